"""The machine's CPUs' busy share over a block, from /proc/stat (no imports beyond the standard
library: the load generator measures with it too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def machine_busy() -> Iterator[Callable[[], float | None]]:
    """The share of all CPUs' time spent busy (not idle, not waiting for the disk) while the
    block runs, from /proc/stat: whether a rate was limited by the CPUs or by something else."""

    def ticks() -> tuple[int, int] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except (OSError, ValueError):
            return None
        return sum(fields[:8]), fields[3] + fields[4]  # all ticks; idle + iowait

    before = ticks()
    share: list[float] = []
    yield lambda: share[0] if share else None
    after = ticks()
    if before and after and after[0] > before[0]:
        total = after[0] - before[0]
        share.append(1 - (after[1] - before[1]) / total)
