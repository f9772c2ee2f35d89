"""P1 due dates of rights requests: Regulation 1182/71 periods in months, French working days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.deadlines import check_extension, due_date, is_overdue, period_end
from domain.errors import DomainError
from domain.markets import Markets

FR = Markets.load().get("FR")
DAYS = st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 31))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2027, 1, 31), date(2027, 2, 28)),  # no 31 February: the month's last day
        (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
        (date(2027, 1, 30), date(2027, 2, 28)),
        (date(2027, 3, 15), date(2027, 4, 15)),  # the same number in the next month
        (date(2026, 12, 31), date(2027, 1, 31)),
    ],
)
def test_p1_period_in_months_ends_on_same_day_number_or_month_end(start: date, end: date) -> None:
    assert period_end(start, 1) == end


def test_p1_31_january_plus_one_month_is_28_february_moved_off_sunday_2027() -> None:
    # 28 Feb 2027 is a Sunday: the deadline moves to Monday 1 March.
    assert date(2027, 2, 28).weekday() == 6
    assert due_date(date(2027, 1, 31), calendar=FR) == date(2027, 3, 1)


def test_p1_end_on_saturday_moves_to_monday() -> None:
    assert date(2026, 2, 28).weekday() == 5
    assert due_date(date(2026, 1, 28), calendar=FR) == date(2026, 3, 2)


def test_p1_end_on_french_public_holiday_moves_to_next_working_day() -> None:
    # 14 July (Fête nationale) 2026 is a Tuesday.
    assert due_date(date(2026, 6, 14), calendar=FR) == date(2026, 7, 15)
    # 1 May 2026 (Friday, Fête du travail) -> Monday 4 May.
    assert due_date(date(2026, 4, 1), calendar=FR) == date(2026, 5, 4)


def test_p1_end_on_working_day_stays() -> None:
    assert due_date(date(2026, 3, 10), calendar=FR) == date(2026, 4, 10)


def test_p1_overdue_from_the_day_after_the_due_date() -> None:
    due = date(2027, 3, 1)
    assert not is_overdue(due, due)
    assert is_overdue(due, due + timedelta(days=1))
    assert not is_overdue(due, due + timedelta(days=1), closed=True)


def test_p1_extension_runs_from_the_end_of_the_first_month() -> None:
    # 31 Jan -> 28 Feb (first month) -> 28 Apr 2027 (Wednesday) after two further months.
    assert due_date(date(2027, 1, 31), calendar=FR, extension_months=2) == date(2027, 4, 28)
    # 28 Mar 2027 is Easter Sunday and 29 Mar Easter Monday (a French public holiday).
    assert due_date(date(2027, 1, 31), calendar=FR, extension_months=1) == date(2027, 3, 30)


def test_p1_extension_is_at_most_two_months_in_total() -> None:
    assert check_extension(0, 2) == 2
    assert check_extension(1, 1) == 2
    with pytest.raises(DomainError) as refused:
        check_extension(1, 2)
    assert refused.value.code == "extension_limit"
    with pytest.raises(DomainError):
        due_date(date(2027, 1, 31), calendar=FR, extension_months=3)


@given(DAYS)
def test_p1_due_is_at_least_28_days_after_receipt_and_a_working_day(received: date) -> None:
    due = due_date(received, calendar=FR)
    assert due >= received + timedelta(days=28)
    assert FR.is_working_day(due)
    # Never more than a month plus the longest run of non-working days (a long weekend).
    assert due <= received + timedelta(days=31 + 4)


@given(DAYS, st.integers(0, 1))
def test_p1_extension_never_brings_the_due_date_forward(received: date, months: int) -> None:
    shorter = due_date(received, calendar=FR, extension_months=months)
    longer = due_date(received, calendar=FR, extension_months=months + 1)
    assert longer > shorter
    assert FR.is_working_day(longer)


@given(DAYS, DAYS)
def test_p1_a_later_receipt_never_has_an_earlier_due_date(first: date, second: date) -> None:
    early, late = sorted((first, second))
    assert due_date(early, calendar=FR) <= due_date(late, calendar=FR)
