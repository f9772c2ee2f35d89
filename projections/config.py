"""Fraud rule thresholds: defaults here, overridable by the TOML file in GIFTCARDS_FRAUD_CONFIG."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.config import ConfigError

LEGITIMATE_INTEREST = "legitimate_interest"
COMPELLING_GROUNDS = "compelling_grounds_fraud_prevention"
Positive = Annotated[int, Field(ge=1)]


class FraudConfig(BaseModel):
    """Thresholds of rules F1-F6; amounts in minor units of the card's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    f1_unknown_codes: Positive = 5
    f1_window_minutes: Positive = 60
    f2_cards: Positive = 5
    f2_total_minor: Positive = 100_000
    f2_window_hours: Positive = 24
    f3_min_amount_minor: Positive = 20_000
    f3_minutes: Positive = 30
    f4_depth: Positive = 3
    # P4, art. 18: after an objection or during a restriction, only the rules with a compelling
    # ground named in docs/data-protection.md keep running (F4: refunds used to move money).
    compelling_rules: tuple[str, ...] = ("F4",)
    severities: dict[str, str] = Field(
        default_factory=lambda: {
            "F1": "high", "F2": "medium", "F3": "high", "F4": "medium", "F5": "low", "F6": "medium",
        }
    )


def load_fraud_config(environ: dict[str, str] | None = None) -> FraudConfig:
    env = os.environ if environ is None else environ
    path = env.get("GIFTCARDS_FRAUD_CONFIG")
    return read_fraud_config(Path(path) if path else None)


def read_fraud_config(path: Path | None) -> FraudConfig:
    """The thresholds in the TOML file at `path` (Settings.fraud_config), defaults if none."""
    if path is None:
        return FraudConfig()
    try:
        with Path(path).open("rb") as handle:
            return FraudConfig(**tomllib.load(handle).get("fraud", {}))
    except OSError as exc:
        raise ConfigError(f"GIFTCARDS_FRAUD_CONFIG: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"GIFTCARDS_FRAUD_CONFIG: not TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"GIFTCARDS_FRAUD_CONFIG: {problems}") from None
