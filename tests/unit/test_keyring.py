"""The KEK ring file: processes starting at once agree on one first KEK; rotation keeps newer."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from infra.keyring import KekRing, new_kek

SEALING = b"k" * 32
FIRST_KEK = (
    "import sys; from infra.keyring import KekRing; from pathlib import Path; "
    "print(KekRing(Path(sys.argv[1]), sealing_key=b'k' * 32).current().kek_id)"
)


def test_p2_processes_creating_the_ring_at_once_share_one_first_kek(
    tmp_path: Path,
) -> None:
    ring = tmp_path / "private" / "kek-ring"
    procs = [
        subprocess.Popen([sys.executable, "-c", FIRST_KEK, str(ring)], stdout=subprocess.PIPE,
                         text=True, cwd=Path(__file__).parents[2])
        for _ in range(6)
    ]
    ids = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(ids) == 1 and ids == set(KekRing(ring, sealing_key=SEALING).ids())
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600
    assert stat.S_IMODE(ring.parent.stat().st_mode) == 0o700


def test_p2_keep_only_destroys_older_keks_and_keeps_a_newer_one(
    tmp_path: Path,
) -> None:
    ring = KekRing(tmp_path / "kek-ring", sealing_key=SEALING)
    first = ring.current()
    second, third = new_kek(), new_kek()
    ring.add(second)
    other = KekRing(tmp_path / "kek-ring", sealing_key=SEALING)  # another process
    other.add(third)  # a concurrent rotation, newer
    assert ring.keep_only(second.kek_id) == [first.kek_id]
    assert KekRing(tmp_path / "kek-ring", sealing_key=SEALING).ids() == [
        second.kek_id, third.kek_id
    ]
    assert ring.get(first.kek_id) is None
