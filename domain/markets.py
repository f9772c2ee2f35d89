"""Country platforms (markets), the limits on code guessing, validated from configuration."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.errors import refuse

DEFAULT_MARKETS_FILE = Path(__file__).with_name("markets.toml")

# ISO 4217 minor unit exponents for the currencies we ship; unknown currencies are refused.
MINOR_UNITS = {"EUR": 2, "GBP": 2, "USD": 2, "CHF": 2, "SEK": 2, "JPY": 0}
AMOUNT_PATTERN = re.compile(r"[+-]?(?P<units>[0-9]+)(?:\.(?P<decimals>[0-9]+))?", re.ASCII)


class Market(BaseModel):
    """One country platform: where a card is sold and the only place it can be used (R6)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[A-Z]{2}$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    min_amount: int = Field(gt=0)
    max_amount: int = Field(gt=0)
    validity_months: int = Field(gt=0, le=120)
    # R17: how long a card issued for returned goods is valid (local law may require more).
    refund_validity_months: int = Field(default=6, gt=0, le=120)
    holiday_country: str
    timezone: str
    terms_version: str
    withdrawal_days: int = 30
    cancellation_days: int = 14

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in MINOR_UNITS:
            raise ValueError(f"unsupported currency {value}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # ZoneInfoNotFoundError is a KeyError, which pydantic would not report as invalid.
        try:
            ZoneInfo(value)
        except (KeyError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value[:40]!r}") from None
        return value

    @field_validator("holiday_country")
    @classmethod
    def _known_holiday_country(cls, value: str) -> str:
        try:
            holidays.country_holidays(value)
        except NotImplementedError:
            raise ValueError(f"no public holidays known for {value[:10]!r}") from None
        return value

    @model_validator(mode="after")
    def _bounds(self) -> Market:
        if self.min_amount > self.max_amount:
            raise ValueError("min_amount above max_amount")
        return self

    @property
    def exponent(self) -> int:
        return MINOR_UNITS[self.currency]

    @property
    def scale(self) -> int:
        """Minor units per major unit (100 for EUR, 1 for JPY)."""
        return int(10**self.exponent)

    @property
    def min_minor(self) -> int:
        return self.min_amount * self.scale

    @property
    def max_minor(self) -> int:
        return self.max_amount * self.scale

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, instant: datetime) -> date:
        """The calendar date on this platform at `instant` (deadlines count in local days)."""
        return instant.astimezone(self.zone).date()

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays(day.year)

    def _holidays(self, year: int) -> holidays.HolidayBase:
        return holidays.country_holidays(self.holiday_country, years=year)

    def to_minor(self, text: str) -> int:
        """Parse a decimal amount in major units (`50`, `50.00`) into minor units."""
        # Plain ASCII digits only: Decimal alone would accept exponents (1e999999999 overflows,
        # 1e-999999999 silently rounds to 0), NaN, underscores and non-ASCII digits.
        match = AMOUNT_PATTERN.fullmatch(text.strip())
        if match is None:
            # Not echoed: a misplaced code would leak into logs and error output (R8).
            raise refuse("invalid_amount", "not a decimal amount (digits, optional decimals)")
        if len(match["units"].lstrip("0")) > 15:
            raise refuse("invalid_amount", "amount is too large")
        decimals = match["decimals"] or ""
        if len(decimals.rstrip("0")) > self.exponent:
            raise refuse(
                "invalid_amount",
                f"{self.currency} amounts have at most {self.exponent} decimals",
            )
        return int(Decimal(match[0]).scaleb(self.exponent))


class GuessingLimit(BaseModel):
    """R8: unknown codes one subject (a customer, or a source without one) may try per fixed,
    epoch-aligned window before redemptions are refused unchecked until the window ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_unknown_codes: int = Field(default=10, ge=1, le=10_000)
    # A ceiling per source (an API key, the order service's topic) whatever customer ids it
    # names: one caller cannot multiply its budget by inventing customers. A busy order
    # service shares it among all its customers, so it is set well above the per-customer one.
    max_unknown_codes_per_source: int = Field(default=30, ge=1, le=1_000_000)
    window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)

    def window_start(self, instant: datetime) -> datetime:
        seconds = self.window_minutes * 60
        epoch = int(instant.timestamp())
        return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


class Markets(BaseModel):
    """The market catalogue and the terms' limits that are not per market, loaded from TOML."""

    model_config = ConfigDict(frozen=True)

    markets: dict[str, Market]
    guessing: GuessingLimit = GuessingLimit()

    def get(self, code: str) -> Market:
        try:
            return self.markets[code]
        except KeyError:
            raise refuse("unknown_market", f"unknown market {code[:10]!r}") from None

    @classmethod
    def load(cls, path: Path = DEFAULT_MARKETS_FILE) -> Markets:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        entries = {
            code: {"code": code, **fields} for code, fields in raw.get("markets", {}).items()
        }
        return cls.model_validate({"markets": entries, "guessing": raw.get("guessing", {})})
