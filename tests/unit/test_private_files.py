"""Keys made at first start are shared by processes starting together: each sees the whole file
that was linked first, never half a file or an error (the signing key, the chain key, the dev
secret)."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from infra import checkpoints as cps
from infra.chainkey import load_chain_key
from infra.private_files import create_private_file


def _signing(path: str, start: multiprocessing.synchronize.Barrier, out: Queue) -> None:
    start.wait()
    try:
        out.put(cps.fingerprint(cps.load_signing_key(Path(path), create=True)))
    except Exception as error:  # reported, so the test names it
        out.put(f"{type(error).__name__}: {error}")


def _chain(path: str, start: multiprocessing.synchronize.Barrier, out: Queue) -> None:
    start.wait()
    try:
        out.put(load_chain_key(Path(path), create=True).hex())
    except Exception as error:
        out.put(f"{type(error).__name__}: {error}")


Queue = multiprocessing.Queue


def race(target: object, path: Path, processes: int = 8) -> list[str]:
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=target, args=(str(path), start, out))  # type: ignore[arg-type]
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    seen = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return seen


def test_processes_starting_together_share_one_signing_key(tmp_path: Path) -> None:
    seen = race(_signing, tmp_path / "keys" / "signing.pem")
    assert len(set(seen)) == 1 and len(seen[0]) == 64, seen  # one fingerprint, no error
    assert stat.S_IMODE((tmp_path / "keys" / "signing.pem").stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["signing.pem"]


def test_processes_starting_together_share_one_chain_key(tmp_path: Path) -> None:
    seen = race(_chain, tmp_path / "chain" / "chain.key")
    assert len(set(seen)) == 1 and len(seen[0]) == 64, seen


def test_an_existing_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    assert create_private_file(path, b"first") is True
    assert create_private_file(path, b"second") is False
    assert path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["secret"]
