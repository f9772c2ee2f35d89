"""The bench's CPU share: whether a measured rate was limited by the machine's CPUs."""

from __future__ import annotations

import os
import time

from bench.cpu import machine_busy


def test_a_block_spinning_one_core_counts_at_least_that_core_busy() -> None:
    with machine_busy() as busy:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
    share = busy()
    assert share is not None
    # One core of cpu_count spun the whole time (less a tick either side); other processes
    # only add to it, and nothing can exceed every CPU busy.
    assert 0.8 / (os.cpu_count() or 1) <= share <= 1.0


def test_the_share_is_known_only_once_the_block_ended() -> None:
    with machine_busy() as busy:
        assert busy() is None
