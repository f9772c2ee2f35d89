"""Two `serve` instances sharing a data directory may sign the same position at once: each
writes its own temporary file, so neither rename finds its file gone."""

from __future__ import annotations

import threading
from pathlib import Path

from infra.checkpoints import write


def test_two_writers_of_one_position_never_lose_their_temporary_file(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        for round_ in range(300):
            increment = {"header": {"kind": "increment", "position": round_, "by": name},
                         "heads": {}}
            barrier.wait()
            try:
                write(tmp_path, increment, b"public key")
            except BaseException as exc:  # shown below, not lost in the thread
                errors.append(exc)

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(list(tmp_path.glob("increment-*.json"))) == 300
    assert list(tmp_path.glob("*.tmp*")) == []
