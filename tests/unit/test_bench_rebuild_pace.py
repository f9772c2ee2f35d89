"""The bench's rebuild pace: the rate over a rebuild's first and last quarter of envelopes."""

from __future__ import annotations

import math

import pytest

from bench.projections import Pace


def run(batches: list[tuple[int, float]]) -> Pace:
    """A pace fed batches of (envelopes applied, seconds the batch took), on a fake clock."""
    clock = [100.0]
    pace = Pace(clock[0])
    for applied, seconds in batches:
        clock[0] += seconds
        pace.marks.append((pace.marks[-1][0] + applied, clock[0]))
    return pace


def test_a_rebuild_at_a_steady_rate_has_equal_quarters() -> None:
    first, last = run([(100, 0.1)] * 40).quarters()
    assert first == pytest.approx(1000) and last == pytest.approx(1000)


def test_a_rebuild_slowing_as_it_grows_shows_a_slower_last_quarter() -> None:
    first, last = run([(100, 0.1)] * 20 + [(100, 0.2)] * 20).quarters()
    assert first == pytest.approx(1000) and last == pytest.approx(500)


def test_the_pace_counts_applied_envelopes_from_progress_calls() -> None:
    pace = Pace(0.0)
    pace(1000, 440)
    pace(2000, 0)  # a page of private records only: nothing applied
    pace(1000, 460)
    assert [m[0] for m in pace.marks] == [0, 440, 440, 900]


def test_a_rebuild_with_nothing_to_apply_has_no_rate() -> None:
    assert all(math.isnan(r) for r in Pace(0.0).quarters())
