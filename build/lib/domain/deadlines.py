"""P1 deadlines of rights requests: periods in months (Regulation 1182/71), off non-working days."""

from __future__ import annotations

from datetime import date

from domain.calendar import add_months, next_working_day
from domain.errors import refuse
from domain.markets import Market

RESPONSE_MONTHS = 1  # GDPR art. 12(3), P1
MAX_EXTENSION_MONTHS = 2  # "by two further months" in total, not per extension


def period_end(start: date, months: int) -> date:
    """Art. 3(2)(c): the day of the last month with the start's number, else that month's last."""
    return add_months(start, months)


def due_date(received_on: date, *, calendar: Market, extension_months: int = 0) -> date:
    """Day by which the answer is due; art. 3(4): a weekend or holiday end moves to the next
    working day of the controller's country (`calendar` supplies its holidays).

    The extension runs from the end of the first month, not from receipt: "two further months"
    after a month, which is never later than receipt + 3 months (31 Jan: 28 Mar, not 31 Mar)."""
    check_extension(0, extension_months)
    first = period_end(received_on, RESPONSE_MONTHS)
    return next_working_day(calendar, period_end(first, extension_months))


def check_extension(already: int, more: int) -> int:
    """The new total extension, refused beyond two months (P1)."""
    if more < 0 or already + more > MAX_EXTENSION_MONTHS:
        raise refuse(
            "extension_limit",
            f"a request can be extended by at most {MAX_EXTENSION_MONTHS} months in total "
            f"(already {already})",
        )
    return already + more


def is_overdue(due: date, as_of: date, *, closed: bool = False) -> bool:
    """Overdue from the day after the due date, as long as the request is not answered."""
    return not closed and as_of > due
