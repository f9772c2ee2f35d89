"""Market configuration (R1, R6, R16) and calendar arithmetic (R9, R16, R19)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.calendar import add_months, cancellation_deadline, withdrawal_deadline
from domain.markets import Markets
from tests.unit.rules_helpers import refused

MARKETS = Markets.load()
GOOD = """[markets.FR]
currency = "EUR"
min_amount = 20
max_amount = 500
validity_months = 6
holiday_country = "FR"
timezone = "Europe/Paris"
terms_version = "FR-2025-11-19"
"""


@pytest.mark.parametrize(
    ("code", "currency"),
    [("FR", "EUR"), ("BE", "EUR"), ("DE", "EUR"), ("ES", "EUR"), ("IT", "EUR"),
     ("GB", "GBP"), ("US", "USD")],
)
def test_r1_r6_shipped_markets_load_with_20_to_500_and_6_months(code: str, currency: str) -> None:
    market = MARKETS.get(code)
    assert (market.code, market.currency) == (code, currency)
    assert (market.min_minor, market.max_minor) == (2000, 50000)
    assert market.validity_months == 6 and market.withdrawal_days == 30
    assert market.terms_version.startswith(code)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('currency = "EUR"', 'currency = "XYZ"'),
        ("min_amount = 20", "min_amount = 600"),
        ("min_amount = 20", "min_amount = -5"),
        ("min_amount = 20", 'min_amount = "twenty"'),
        ('timezone = "Europe/Paris"', 'timezone = "Mars/Olympus"'),
        ('holiday_country = "FR"', 'holiday_country = "ZZ"'),
        ("validity_months = 6", "validity_months = 0"),
        ("[markets.FR]", "[markets.fr]"),
        ('terms_version = "FR-2025-11-19"', 'terms_version = "x"\nsurprise = 1'),
    ],
)
def test_r1_bad_markets_toml_is_refused(tmp_path: Path, old: str, new: str) -> None:
    path = tmp_path / "markets.toml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(ValidationError):
        Markets.load(path)


def test_r1_good_markets_toml_loads(tmp_path: Path) -> None:
    path = tmp_path / "markets.toml"
    path.write_text(GOOD)
    assert list(Markets.load(path).markets) == ["FR"]


@pytest.mark.parametrize(
    "text", ["NaN", "Infinity", "-inf", "1e309", "1e999999999", "1e-999999999", "1_000", "１２",
             "0x10", ".5", "5.", "", " ", "20,00", "20.001", "9" * 16]
)
def test_r1_to_minor_refuses_anything_but_plain_decimals(text: str) -> None:
    with refused("invalid_amount"):
        MARKETS.get("FR").to_minor(text)


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=99))
def test_r1_to_minor_is_exact(units: int, cents: int) -> None:
    assert MARKETS.get("GB").to_minor(f"{units}.{cents:02d}") == units * 100 + cents


@pytest.mark.parametrize(
    ("start", "end"),
    [("2025-08-31", "2026-02-28"), ("2027-08-31", "2028-02-29"), ("2026-01-31", "2026-07-31"),
     ("2026-03-31", "2026-09-30"), ("2026-07-15", "2027-01-15")],
)
def test_r9_six_months_with_month_end_clamping(start: str, end: str) -> None:
    assert add_months(date.fromisoformat(start), 6) == date.fromisoformat(end)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_r9_add_months_keeps_the_time_and_never_goes_past_the_month(start: datetime) -> None:
    instant = start.replace(tzinfo=UTC)
    later = add_months(instant, 6)
    assert (later.year * 12 + later.month) - (instant.year * 12 + instant.month) == 6
    assert later.time() == instant.time() and later.day <= instant.day
    assert later > instant


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2035, 12, 1)),
       st.sampled_from(["FR", "DE", "GB", "US"]))
def test_r16_deadline_is_the_first_working_day_from_day_30(received: date, code: str) -> None:
    market = MARKETS.get(code)
    deadline = withdrawal_deadline(market, received)
    assert (deadline - received).days >= 30
    assert market.is_working_day(deadline)
    assert (deadline - received).days == 30 or not any(
        market.is_working_day(date.fromordinal(d))
        for d in range(received.toordinal() + 30, deadline.toordinal())
    )


def test_r16_holidays_are_those_of_the_market_country() -> None:
    assert not MARKETS.get("FR").is_working_day(date(2026, 7, 14))
    assert MARKETS.get("GB").is_working_day(date(2026, 7, 14))
    assert not MARKETS.get("GB").is_working_day(date(2026, 12, 28))
    assert MARKETS.get("FR").is_working_day(date(2026, 12, 28))
    assert not MARKETS.get("US").is_working_day(date(2026, 11, 26))


def test_r19_cancellation_deadline_is_14_days_after_purchase_day() -> None:
    assert cancellation_deadline(MARKETS.get("FR"), date(2026, 1, 12)) == date(2026, 1, 26)
