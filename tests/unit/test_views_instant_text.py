"""The views' one text form of an instant: the shortcut for UTC text agrees with parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import parse_instant
from projections.timefmt import fmt, norm

instants = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
)


@given(instants, st.booleans())
def test_norm_of_any_written_instant_is_its_utc_text_with_microseconds(
    instant: datetime, whole_second: bool
) -> None:
    if whole_second:
        instant = instant.replace(microsecond=0)
    for text in (instant.isoformat(), instant.isoformat().replace("+00:00", "Z"),
                 instant.astimezone(UTC).isoformat().replace("+00:00", "Z")):
        assert norm(text) == fmt(parse_instant(text))
        assert len(norm(text)) == len("2025-01-06T09:41:04.000000Z")


@pytest.mark.parametrize("text", ["2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z",
                                  "2025-01-06T24:00:00Z", "2025-01-06T09:61:00.000000Z",
                                  "not an instant"])
def test_norm_refuses_utc_looking_text_that_is_no_instant(text: str) -> None:
    with pytest.raises(ValueError):
        norm(text)
