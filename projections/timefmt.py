"""One text form for instants in views, so that SQL compares them in time order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from domain.calendar import parse_instant
from domain.markets import Markets


def fmt(instant: datetime) -> str:
    # isoformat is several times faster than strftime(FORMAT) and gives the same text in UTC.
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# Bounded caches: an event's instant is read by several views (norm, windows, months) of the
# same batch; each text is parsed once.
@lru_cache(maxsize=1 << 14)
def instant(text: str) -> datetime:
    """parse_instant, remembered (datetimes are immutable)."""
    return parse_instant(text)


# UTC to the second or the microsecond, as the events carry their instants: already in the
# fixed-width form but for the fraction, so no datetime is formatted back to text.
_UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


@lru_cache(maxsize=1 << 14)
def norm(text: str) -> str:
    """Any ISO-8601 instant to the fixed-width UTC form (microseconds always present)."""
    parsed = instant(text)  # refuses what is not an instant, whatever its form
    if (utc := _UTC_TEXT.fullmatch(text)) is not None:
        return f"{text[:19]}{utc[1] or '.000000'}Z"
    return fmt(parsed)


@lru_cache(maxsize=1 << 12)
def bucket(text: str, width: timedelta) -> str:
    """Start of the fixed, epoch-aligned window holding the instant: windows never depend on
    the order events arrive in, so every replay finds the same windows."""
    seconds = int(width.total_seconds())
    epoch = int(instant(text).timestamp())
    return fmt(datetime.fromtimestamp(epoch - epoch % seconds, UTC))


@lru_cache(maxsize=1 << 12)
def month_in(zone: ZoneInfo, occurred_at: str) -> str:
    """The instant's month (`YYYY-MM`) in the time zone: finance closes months locally."""
    return instant(occurred_at).astimezone(zone).strftime("%Y-%m")


class TimeZones:
    """Each market's time zone, from the markets the process runs with (GIFTCARDS_MARKETS_FILE,
    passed in by the composition root); UTC for a market they do not name."""

    def __init__(self, markets: Markets) -> None:
        self._zones = {code: market.zone for code, market in markets.markets.items()}

    def of(self, market: str) -> ZoneInfo:
        return self._zones.get(market) or ZoneInfo("UTC")

    def month_of(self, market: str, occurred_at: str) -> str:
        return month_in(self.of(market), occurred_at)


@cache
def shipped_zones() -> TimeZones:
    """The shipped markets' time zones (domain/markets.toml): where no markets are passed in."""
    return TimeZones(Markets.load())
