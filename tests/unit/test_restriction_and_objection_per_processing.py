"""Restriction (art. 18) and objection (P4), processing by processing, as the table in
docs/data-protection.md says: fraud rules profile neither an objector nor a restricted subject
unless the table names a compelling ground for the rule (F4 only)."""

from __future__ import annotations

from typing import Any

import pytest

from projections.config import FraudConfig
from tests.unit.rules_helpers import buy, pay
from tests.unit.test_fraud_rules import alerts, cus, guess, subject_event

__all__ = ["alerts"]  # the views fixture, shared with the fraud rules' own tests

STATES = ["SubjectObjectedToProfiling", "SubjectRestricted"]


@pytest.mark.parametrize("state", STATES)
def test_p4_f1_code_guessing_stops_profiling_an_objector_or_restricted_subject(
    memory_service: Any, alerts: Any, clock: Any, state: str
) -> None:
    mallory = cus(memory_service, "mallory")
    alerts.views.apply([subject_event(state, mallory, "2026-01-12T09:00:00Z", 1)])

    guess(memory_service.app, 5, "mallory", clock)

    assert alerts("F1") == []
    states = alerts.views.db.execute(
        "SELECT count(*) FROM view_fraud_state WHERE state_key LIKE ?", (f"F1|{mallory}|%",))
    assert states == [(0,)]  # no window state built either: that is profiling too


@pytest.mark.parametrize("state", STATES)
def test_p4_f3_fast_cash_out_stops_profiling_an_objector_or_restricted_subject(
    memory_service: Any, alerts: Any, clock: Any, state: str
) -> None:
    alerts.views.apply([subject_event(state, cus(memory_service, "thief"),
                                      "2026-01-12T09:00:00Z", 1)])
    card = buy(memory_service.app, buyer_id="victim", amount=30_000)
    clock.advance(minutes=5)

    pay(memory_service.app, card.code, "loot", 30_000, customer_id="thief")

    assert alerts("F3") == []


def test_p4_only_the_rules_the_table_names_compelling_grounds_for_keep_running() -> None:
    from pathlib import Path

    table = Path("docs/data-protection.md").read_text(encoding="utf-8")
    compelling = FraudConfig().compelling_rules
    assert compelling == ("F4",)
    for rule in ("F1", "F2", "F3", "F4", "F5", "F6"):
        row = next(line for line in table.splitlines() if line.startswith(f"| fraud rule {rule}"))
        assert ("compelling" in row) == (rule in compelling), row
