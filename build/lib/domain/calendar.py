"""Calendar arithmetic of the terms: months of validity and deadlines in days."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from domain.markets import Market

D = TypeVar("D", date, datetime)


def parse_instant(text: str) -> datetime:
    """THE reading of an ISO-8601 instant (CLI, settings, views): `Z` allowed, naive means UTC.
    Raises ValueError when the text is not one."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_months(start: D, months: int) -> D:
    """Same day `months` later, clamped to the month's last day (31 Aug + 6 months = 28/29 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def next_working_day(market: Market, day: date) -> date:
    """The day itself if it is a working day on the market, else the next working day."""
    while not market.is_working_day(day):
        day += timedelta(days=1)
    return day


def withdrawal_deadline(market: Market, received_on: date) -> date:
    """R16: 30 days after receipt (receipt day not counted), moved off weekends and holidays."""
    return next_working_day(market, received_on + timedelta(days=market.withdrawal_days))


def cancellation_deadline(market: Market, purchased_on: date) -> date:
    """R19: 14 days from the purchase date (the day of purchase not counted)."""
    return purchased_on + timedelta(days=market.cancellation_days)
