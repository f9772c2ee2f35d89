"""One text form for instants in views, so that SQL compares them in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from domain.calendar import parse_instant


def fmt(instant: datetime) -> str:
    # isoformat is several times faster than strftime(FORMAT) and gives the same text in UTC.
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@lru_cache(maxsize=1 << 14)  # bounded: an event's instant is normalised several times
def norm(text: str) -> str:
    """Any ISO-8601 instant to the fixed-width UTC form (microseconds always present)."""
    return fmt(parse_instant(text))


def bucket(text: str, width: timedelta) -> str:
    """Start of the fixed, epoch-aligned window holding the instant: windows never depend on
    the order events arrive in, so every replay finds the same windows."""
    seconds = int(width.total_seconds())
    epoch = int(parse_instant(text).timestamp())
    return fmt(datetime.fromtimestamp(epoch - epoch % seconds, UTC))
