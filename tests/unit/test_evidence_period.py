"""The evidence pack's period is the market's local month, as the breakage view it ships (R9)."""

from __future__ import annotations

from datetime import UTC, datetime

from projections.evidence import month_bounds
from projections.timefmt import shipped_zones


def test_r9_pack_period_is_the_markets_local_month() -> None:
    start, end = month_bounds("2026-01", shipped_zones().of("FR"))
    assert start == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)  # Paris, winter: UTC+1
    assert end == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    summer_start, _ = month_bounds("2026-07", shipped_zones().of("FR"))
    assert summer_start == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)  # summer time: UTC+2
    us_start, us_end = month_bounds("2026-03", shipped_zones().of("US"))
    assert us_start == datetime(2026, 3, 1, 5, 0, tzinfo=UTC)  # New York, EST
    assert us_end == datetime(2026, 4, 1, 4, 0, tzinfo=UTC)  # EDT from 8 March


def test_r9_pack_bounds_agree_with_the_breakage_views_month_at_the_edges() -> None:
    start, end = month_bounds("2026-01", shipped_zones().of("FR"))
    assert shipped_zones().month_of("FR", "2025-12-31T22:59:59Z") == "2025-12"
    assert shipped_zones().month_of("FR", start.isoformat()) == "2026-01"
    assert shipped_zones().month_of("FR", "2026-01-31T22:59:59Z") == "2026-01"
    assert shipped_zones().month_of("FR", end.isoformat()) == "2026-02"
