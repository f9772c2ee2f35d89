"""Fraud rules F1-F6: each fires on its pattern and stays quiet for a normal customer; P4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from application.commands import CancelCard, RefundOrder
from domain.errors import DomainError
from infra.bootstrap import Service
from infra.db import Database
from projections import queries
from projections.config import FraudConfig, load_fraud_config
from projections.runner import Item, Projector
from projections.sources import sync_store
from tests.store_ids import published
from tests.unit.rules_helpers import buy, pay

CONFIG = FraudConfig(f1_unknown_codes=3, f2_cards=3, f2_total_minor=100_000, f3_minutes=30,
                     f3_min_amount_minor=20_000, f4_depth=2)


@pytest.fixture
def alerts(memory_service: Service, tmp_path: Path) -> Any:
    views = Projector(Database(f"sqlite:///{tmp_path / 'views.sqlite3'}"), CONFIG)

    def run(rule: str | None = None) -> list[dict[str, Any]]:
        sync_store(memory_service.app, views)
        return list(queries.alerts(views.db, rule=rule)["alerts"])

    run.views = views  # type: ignore[attr-defined]
    return run


def cus(service: Service, customer_id: str) -> str:
    """The customer's pseudonym: what the stream, and so the views, hold (P5)."""
    return published(service, customer_id)


def guess(app: Any, n: int, customer: str, clock: Any, minutes: int = 1) -> None:
    for i in range(n):
        clock.advance(minutes=minutes)
        with pytest.raises(DomainError):
            pay(app, f"GUESS{i}", f"{customer}-{i}", 1000, customer_id=customer)


def test_f1_code_guessing_alerts_once_per_window(memory_service, alerts, clock):
    guess(memory_service.app, 5, "mallory", clock)
    (alert,) = alerts("F1")
    assert alert["severity"] == "high" and len(alert["event_ids"]) == 5
    assert alert["detected_at"].startswith("2026-01-12T10:03")  # the third attempt
    assert "3" in alert["explanation"]


def test_f1_normal_customer_mistyping_once_is_not_flagged(memory_service, alerts, clock):
    guess(memory_service.app, 2, "alice", clock)
    guess(memory_service.app, 2, "alice", clock, minutes=120)
    assert alerts("F1") == []


def test_f2_purchase_velocity_count(memory_service, alerts, clock):
    for _ in range(3):
        clock.advance(minutes=10)
        buy(memory_service.app, buyer_id="speedy", amount=2000)
    (alert,) = alerts("F2")
    assert alert["customer_id"] == cus(memory_service, "speedy") and len(alert["event_ids"]) == 3


def test_f2_purchase_velocity_total(memory_service, alerts, clock):
    buy(memory_service.app, buyer_id="whale", amount=50_000)
    buy(memory_service.app, buyer_id="whale", amount=50_000)
    assert [a["customer_id"] for a in alerts("F2")] == [cus(memory_service, "whale")]


def test_f2_normal_buyer_not_flagged(memory_service, alerts, clock):
    buy(memory_service.app, buyer_id="alice", amount=5000)
    clock.advance(days=2)
    buy(memory_service.app, buyer_id="alice", amount=5000)
    assert alerts("F2") == []


def test_f3_fast_cash_out_by_another_customer(memory_service, alerts, clock):
    card = buy(memory_service.app, buyer_id="victim", amount=30_000)
    clock.advance(minutes=5)
    pay(memory_service.app, card.code, "loot", 30_000, customer_id="thief")
    (alert,) = alerts("F3")
    thief = cus(memory_service, "thief")
    assert (alert["card_id"], alert["customer_id"]) == (str(card.card_id), thief)


def test_f3_normal_gift_used_days_later_not_flagged(memory_service, alerts, clock):
    card = buy(memory_service.app, buyer_id="aunt", amount=30_000)
    clock.advance(days=3)
    pay(memory_service.app, card.code, "gift", 30_000, customer_id="nephew")
    own = buy(memory_service.app, buyer_id="bob", amount=30_000)
    pay(memory_service.app, own.code, "own", 30_000, customer_id="bob")
    assert alerts("F3") == []


def refund_chain(app: Any, clock: Any, depth: int) -> str:
    bought = buy(app, buyer_id="cycler", amount=5000)
    card_id, code, amount = bought.card_id, bought.code, bought.card.amount
    for i in range(depth):
        pay(app, code, f"cycle-{i}", amount, customer_id="cycler")
        card = app.refund(RefundOrder(
            order_id=f"cycle-{i}", returned_amount=amount, received_on=clock.now.date(),
        )).new_card
        card_id, code, amount = card.card_id, card.code, card.amount
    return str(card_id)


def test_f4_refund_cycling_chain_of_depth_n(memory_service, alerts, clock):
    last = refund_chain(memory_service.app, clock, 3)
    (alert,) = alerts("F4")
    assert alert["customer_id"] == cus(memory_service, "cycler") and len(alert["event_ids"]) == 3
    assert alert["card_id"] != last  # the card at depth 2, not the deeper one


def test_f4_single_refund_not_flagged(memory_service, alerts, clock):
    refund_chain(memory_service.app, clock, 1)
    assert alerts("F4") == []


def test_f5_cross_market_attempt(memory_service, alerts):
    card = buy(memory_service.app)
    for market in ("DE", "IT"):
        with pytest.raises(DomainError):
            pay(memory_service.app, card.code, f"x-{market}", 1000, market=market)
    (alert,) = alerts("F5")
    assert len(alert["event_ids"]) == 2 and "2 time(s)" in alert["explanation"]


def test_f5_normal_refusals_on_home_market_not_flagged(memory_service, alerts):
    card = buy(memory_service.app)
    with pytest.raises(DomainError):
        pay(memory_service.app, card.code, "promo", 1000, promo_codes=["SALE"])
    assert alerts("F5") == []


def test_f6_cancellation_after_redemption_attempt(memory_service, alerts):
    card = buy(memory_service.app)
    with pytest.raises(DomainError):
        pay(memory_service.app, card.code, "try", 1000, market="DE", customer_id="x")
    memory_service.app.cancel(CancelCard(card_id=card.card_id))
    (alert,) = alerts("F6")
    assert alert["card_id"] == str(card.card_id)


def test_f6_normal_cancellation_not_flagged(memory_service, alerts):
    card = buy(memory_service.app)
    memory_service.app.cancel(CancelCard(card_id=card.card_id))
    assert alerts("F6") == []


def subject_event(kind: str, subject: str, at: str, pos: int) -> Item:
    return Item("test", 0, pos, {
        "event_id": f"{kind}-{subject}", "event_type": kind, "schema_version": 1,
        "card_id": None, "stream_id": f"subject-{subject}", "card_version": pos,
        "position": pos, "occurred_at": at, "recorded_at": at, "market": None,
        "currency": None, "terms_version": "GDPR", "correlation_id": "req-1",
        "data": {"subject_id": subject, "request_id": "req-1"},
    })


def test_p4_objection_keeps_only_compelling_rules_with_legal_basis(memory_service, alerts, clock):
    app = memory_service.app
    buy(app, buyer_id="whale", amount=50_000)
    buy(app, buyer_id="whale", amount=50_000)
    assert [a["legal_basis"] for a in alerts("F2")] == ["legitimate_interest"]
    alerts.views.apply([subject_event("SubjectObjectedToProfiling", cus(memory_service, "whale"),
                                      "2026-01-12T11:00:00Z", 1)])
    clock.advance(days=1)
    for _ in range(2):
        card = buy(app, buyer_id="whale", amount=50_000)
    clock.advance(minutes=1)
    pay(app, card.code, "cash", 50_000, customer_id="whale-friend")
    found = alerts()
    f2 = [a for a in found if a["rule"] == "F2"]
    assert len(f2) == 1 and f2[0]["detected_at"] < "2026-01-12T11"  # before the objection only
    friend = cus(memory_service, "whale-friend")
    assert [a["rule"] for a in found if a["customer_id"] == friend] == ["F3"]


def test_p4_objection_applied_late_still_removes_profiling_alerts(memory_service, alerts, clock):
    """The objection may arrive after the alerts (another partition): same end state."""
    clock.advance(days=1)
    buy(memory_service.app, buyer_id="whale", amount=50_000)
    buy(memory_service.app, buyer_id="whale", amount=50_000)
    assert len(alerts("F2")) == 1
    whale = cus(memory_service, "whale")
    alerts.views.apply([subject_event("SubjectObjectedToProfiling", whale,
                                      "2026-01-12T11:00:00Z", 1)])
    assert alerts("F2") == []


def test_erasure_is_recorded_and_views_hold_only_ids(memory_service, alerts):
    buy(memory_service.app, buyer_id="gone", buyer_email="gone@example.org")
    alerts()
    gone = cus(memory_service, "gone")
    alerts.views.apply([subject_event("SubjectErased", gone, "2026-01-12T11:00:00Z", 1)])
    rows = alerts.views.db.execute("SELECT subject_id, erased_at FROM view_subjects")
    # Recorded under a pseudonym rotated out of reach of the subject's events (P2).
    assert [r[1] for r in rows] == ["2026-01-12T11:00:00.000000Z"]
    assert rows[0][0].startswith("erased_") and rows[0][0] != gone
    assert not alerts.views.db.execute(  # P5: the clear id is in no view
        "SELECT 1 FROM view_subjects WHERE subject_id IN ('gone', ?)", (gone,))


def test_fraud_config_from_toml_and_bad_file_is_a_clear_error(tmp_path):
    good = tmp_path / "fraud.toml"
    good.write_text("[fraud]\nf3_minutes = 10\ncompelling_rules = ['F1']\n")
    config = load_fraud_config({"GIFTCARDS_FRAUD_CONFIG": str(good)})
    assert config.f3_minutes == 10 and config.compelling_rules == ("F1",)
    bad = tmp_path / "bad.toml"
    bad.write_text("[fraud]\nf3_minutes = -1\n")
    from infra.config import ConfigError

    with pytest.raises(ConfigError, match="f3_minutes"):
        load_fraud_config({"GIFTCARDS_FRAUD_CONFIG": str(bad)})


def test_p4_an_alert_opened_before_the_objection_stops_growing(
    memory_service, alerts, clock
):
    """Finding 2: the objection is judged by each new event's time, not the alert's first
    `detected_at`; the subject's window state stops being built too."""
    app = memory_service.app
    buy(app, buyer_id="whale", amount=50_000)
    clock.advance(minutes=5)
    buy(app, buyer_id="whale", amount=50_000)
    (before,) = alerts("F2")
    assert len(before["event_ids"]) == 2
    alerts.views.apply([subject_event("SubjectObjectedToProfiling", cus(memory_service, "whale"),
                                      "2026-01-12T10:10:00Z", 1)])
    clock.advance(minutes=10)  # 10:15, same F2 window
    for _ in range(2):
        clock.advance(minutes=1)
        buy(app, buyer_id="whale", amount=50_000)
    (after,) = alerts("F2")
    assert after == before  # no event after the objection made it grow
    states = alerts.views.db.execute("SELECT data FROM view_fraud_state WHERE state_key LIKE ?",
                                     (f"F2|{cus(memory_service, 'whale')}|%",))
    assert states and all(str(data).count("2026-01-12T10:1") == 0 for (data,) in states)


def test_art18_restriction_stops_profiling_until_lifted(memory_service, alerts, clock):
    """Finding 8: while restricted (art. 18) a subject is not profiled, F2 included; after the
    restriction is lifted, profiling resumes from the lifting on, never for the period itself."""
    app = memory_service.app
    whale = cus(memory_service, "whale")
    alerts.views.apply([subject_event("SubjectRestricted", whale, "2026-01-12T09:00:00Z", 1)])
    for _ in range(2):
        clock.advance(minutes=1)
        buy(app, buyer_id="whale", amount=50_000)
    assert alerts("F2") == []
    alerts.views.apply([subject_event("SubjectRestrictionLifted", cus(memory_service, "whale"),
                                      "2026-01-13T00:00:00Z", 2)])
    clock.advance(days=2)
    for _ in range(2):
        clock.advance(minutes=1)
        buy(app, buyer_id="whale", amount=50_000)
    (alert,) = alerts("F2")
    assert alert["detected_at"] >= "2026-01-14" and alert["legal_basis"] == "legitimate_interest"


def test_p2_fraud_data_is_purged_past_its_retention(memory_service, alerts, clock):
    """Finding 7: with the clock 5 years (GIFTCARDS_RETENTION_FRAUD_YEARS) past, alerts and
    window state naming the customer are dropped, and a late event cannot bring them back."""
    from datetime import datetime, timedelta

    from projections.retention import purge_fraud_data

    whale_then_recent(memory_service.app, clock)
    expected = {cus(memory_service, c) for c in ("whale", "recent")}
    assert {a["customer_id"] for a in alerts("F2")} == expected
    cutoff = clock() - timedelta(days=400)  # between the two

    report = purge_fraud_data(alerts.views.db, cutoff)

    assert (report["alerts_dropped"], report["window_states_dropped"]) == (1, 1)
    assert [a["customer_id"] for a in alerts("F2")] == [cus(memory_service, "recent")]
    state = alerts.views.db.execute("SELECT state_key FROM view_fraud_state")
    assert not [k for (k,) in state if cus(memory_service, "whale") in k]
    assert purge_fraud_data(alerts.views.db, cutoff)["alerts_dropped"] == 0  # idempotent
    # The same old events projected again (a rebuild, a late partition) stay purged.
    alerts.views.reset()
    purge_fraud_data(alerts.views.db, cutoff)
    assert [a["customer_id"] for a in alerts("F2")] == [cus(memory_service, "recent")]
    assert datetime.fromisoformat(report["cutoff"].rstrip("Z")) < clock().replace(tzinfo=None)


def whale_then_recent(app, clock):
    """F2 material twice: three big purchases by "whale", then 800 days later by "recent"."""
    for _ in range(3):
        buy(app, buyer_id="whale", amount=50_000)
    clock.advance(days=800)
    for _ in range(3):
        buy(app, buyer_id="recent", amount=50_000)


def test_p2_a_rebuild_keeps_the_purge_horizon(memory_service, alerts, clock):
    """`projections rebuild` drops and replays every view: the alerts purged past their
    retention must stay gone without waiting for the next purge (fixed clock)."""
    from datetime import timedelta

    from projections.retention import purge_fraud_data

    whale_then_recent(memory_service.app, clock)
    assert {a["customer_id"] for a in alerts("F2")} == {
        cus(memory_service, "whale"), cus(memory_service, "recent")}
    purge_fraud_data(alerts.views.db, clock() - timedelta(days=400))

    alerts.views.reset()  # what `projections rebuild` does, then the replay below

    assert [a["customer_id"] for a in alerts("F2")] == [cus(memory_service, "recent")]
    state = alerts.views.db.execute("SELECT state_key FROM view_fraud_state")
    assert not [k for (k,) in state if "whale" in k]
