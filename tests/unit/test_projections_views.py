"""Balance, liability, breakage and audit views, built by the store runner from real commands."""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.commands import CancelCard, RefundOrder
from domain.calendar import parse_instant
from domain.errors import DomainError
from infra.bootstrap import Service
from infra.db import Database
from projections import queries, schema
from projections.audit import chain_hash
from projections.runner import STORE, Item, Projector
from projections.sources import store_page, sync_store
from tests.store_ids import published
from tests.unit.rules_helpers import buy, pay

Sync = Callable[[], Projector]


@pytest.fixture
def views(tmp_path: Path) -> Projector:
    return Projector(Database(f"sqlite:///{tmp_path / 'views.sqlite3'}"))


@pytest.fixture
def sync(memory_service: Service, views: Projector) -> Sync:
    def run() -> Projector:
        sync_store(memory_service.app, views)
        return views

    return run


def balance(views: Projector, card_id: str) -> dict[str, Any]:
    cols = list(schema.BALANCE.columns)
    rows = views.db.execute(
        f"SELECT {', '.join(cols)} FROM view_balance WHERE card_id = ?", [card_id]
    )
    return dict(zip(cols, rows[0], strict=True))


def test_r1_r4_purchase_opens_an_active_card_in_the_balance_view(memory_service, sync):
    card = buy(memory_service.app, amount=7000)
    row = balance(sync(), str(card.card_id))
    assert (row["status"], row["amount"], row["balance"], row["market"]) == (
        "active", 7000, 7000, "FR")
    assert row["last_version"] == 2  # Purchased + Activated


def test_r11_redemption_closes_card_and_forfeits_rest_as_breakage(memory_service, sync, clock):
    card = buy(memory_service.app, amount=5000)
    pay(memory_service.app, card.code, "order-1", 3000)
    views = sync()
    assert balance(views, str(card.card_id))["status"] == "redeemed"
    rows = queries.breakage(views.db)["rows"]
    assert rows == [{"market": "FR", "currency": "EUR", "month": "2026-01", "after_use": 2000,
                     "expired": 0, "total": 2000}]


def test_r9_expiry_forfeits_balance_as_expired_breakage(memory_service, sync, clock):
    card = buy(memory_service.app, amount=4000)
    clock.advance(days=200)
    memory_service.app.expire()
    views = sync()
    assert balance(views, str(card.card_id))["status"] == "expired"
    (row,) = queries.breakage(views.db)["rows"]
    assert (row["month"], row["after_use"], row["expired"]) == ("2026-07", 0, 4000)


def test_liability_as_of_any_past_instant(memory_service, sync, clock):
    app = memory_service.app
    first = buy(app, amount=5000)
    t1 = clock.advance(hours=1)
    buy(app, amount=2000, market="GB")
    t2 = clock.advance(hours=1)
    pay(app, first.code, "order-1", 1000)
    views = sync()
    before = queries.liability(views.db, parse_instant("2026-01-12T09:00:00Z"))
    assert before["markets"] == []
    just_before_t1 = t1 - timedelta(seconds=1)
    early = {m["market"]: m for m in queries.liability(views.db, just_before_t1)["markets"]}
    assert early == {"FR": {"market": "FR", "currency": "EUR", "outstanding": 5000,
                            "open_cards": 1}}
    now = {m["market"]: m for m in queries.liability(views.db, t2)["markets"]}
    assert (now["FR"]["outstanding"], now["FR"]["open_cards"]) == (0, 0)
    assert (now["GB"]["outstanding"], now["GB"]["currency"]) == (2000, "GBP")
    assert queries.liability(views.db, t2, "GB")["markets"][0]["market"] == "GB"


def test_r17_refund_lineage_in_balance_view(memory_service, sync, clock):
    app = memory_service.app
    card = buy(app, amount=5000)
    pay(app, card.code, "order-1", 5000)
    refund = app.refund(RefundOrder(
        order_id="order-1", returned_amount=2000, received_on=clock.now.date(),
    ))
    new_id = str(refund.new_card.card_id)
    views = sync()
    assert balance(views, str(card.card_id))["replaced_by"] == f'["{new_id}"]'
    assert balance(views, new_id)["replaces"] == str(card.card_id)
    assert balance(views, new_id)["balance"] == 2000


def test_r19_cancellation_closes_card_without_breakage(memory_service, sync):
    card = buy(memory_service.app)
    memory_service.app.cancel(CancelCard(card_id=card.card_id))
    views = sync()
    assert balance(views, str(card.card_id))["status"] == "cancelled"
    assert queries.breakage(views.db)["rows"] == []


def test_audit_rows_chain_hashes_with_actor(memory_service, sync):
    card = buy(memory_service.app)
    with pytest.raises(DomainError):
        pay(memory_service.app, card.code, "order-1", 1000, market="DE", customer_id="cust-9")
    views = sync()
    rows = views.db.execute(
        "SELECT version, event_type, actor, hash, prev_hash FROM view_audit WHERE card_id = ? "
        "ORDER BY version", [str(card.card_id)])
    assert [r[1] for r in rows] == ["GiftCardPurchased", "GiftCardActivated",
                                    "GiftCardRedemptionRefused"]
    # P5: the audit view names customers by the pseudonym of their store id
    assert [r[2] for r in rows] == [published(memory_service, "cust-1"), "system",
                                    published(memory_service, "cust-9")]
    assert rows[0][4] is None and rows[1][4] == rows[0][3] and rows[2][4] == rows[1][3]
    envelope = next(i.envelope for i in store_page(memory_service.app, 1, 100)
                    if i.envelope and i.envelope["card_id"] == str(card.card_id))
    assert rows[0][3] == chain_hash(None, envelope)


def test_views_hold_no_code_nor_pii_ciphertext(memory_service, sync):
    card = buy(memory_service.app, buyer_email="alice@example.org", message="Happy birthday")
    dumped = repr(schema.dump(sync().db))
    assert card.code not in dumped
    assert "alice" not in dumped and "gc1:" not in dumped and "birthday" not in dumped


def test_redelivery_is_skipped_by_position_and_by_stream_version(memory_service, sync, views):
    app = memory_service.app
    card = buy(app)
    pay(app, card.code, "order-1", 1000)
    sync()
    before = schema.dump(views.db)
    page = store_page(app, 1, 1000)
    assert views.apply(page) == 0  # same positions: already seen
    moved = [Item("other-source", 0, i.pos, i.envelope) for i in page]
    assert views.apply(moved) == 0  # same events at new positions (a relay retry)
    assert schema.dump(views.db) == before


def test_bad_envelope_is_rejected_with_reason_and_position_moves(views):
    bad = Item("t", 0, 5, {"event_type": "GiftCardRedeemed", "stream_id": "x", "card_id": "x",
                           "card_version": 3, "event_id": "e", "occurred_at": "2026-01-01T00:00Z",
                           "data": {}})
    assert views.apply([bad, Item("t", 0, 6, None, "value is not JSON")]) == 0
    reasons = [r[0] for r in views.db.execute("SELECT reason FROM view_rejects ORDER BY pos")]
    assert "before its purchase" in reasons[0] and reasons[1] == "value is not JSON"
    assert views.positions("t") == {0: 6}


def history(app: Any, clock: Any) -> None:
    """Cards across markets with every outcome, refund chains and refusals."""
    rng = random.Random(7)
    codes = []
    for i in range(12):
        clock.advance(minutes=rng.randint(1, 90))
        card = buy(app, amount=rng.choice([2000, 5000, 30000]), buyer_id=f"b{i % 3}",
                   market=rng.choice(["FR", "DE"]))
        codes.append(card)
    for i, card in enumerate(codes):
        clock.advance(minutes=rng.randint(1, 30))
        try:
            if i % 4 == 0:
                with pytest.raises(DomainError):
                    pay(app, card.code, f"w{i}", 1000, market="IT", customer_id=f"c{i}")
                app.cancel(CancelCard(card_id=card.card_id))
            elif i % 4 == 1:
                pay(app, card.code, f"o{i}", 1000, market="FR", customer_id=f"c{i}")
            elif i % 4 == 2:
                pay(app, card.code, f"o{i}", card.card.amount, market=card.card.market)
                new = app.refund(RefundOrder(
                    order_id=f"o{i}", returned_amount=card.card.amount,
                    received_on=clock.now.date(),
                )).new_card
                pay(app, new.code, f"p{i}", new.amount, market=card.card.market)
                app.refund(RefundOrder(
                    order_id=f"p{i}", returned_amount=new.amount, received_on=clock.now.date(),
                ))
        except DomainError:
            pass
    for i in range(6):
        with contextlib.suppress(DomainError):
            pay(app, f"WRONG{i}", f"u{i}", 500, customer_id="guesser")
    clock.advance(days=200)
    app.expire()


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10**6), batch=st.integers(1, 40))
def test_views_do_not_depend_on_interleaving_of_streams(memory_service, clock, tmp_path, seed,
                                                        batch):
    """Kafka keeps order only within a stream: any interleaving gives the same views."""
    from projections.config import FraudConfig

    app = memory_service.app
    if not app.recorder.max_notification_id():
        history(app, clock)
    config = FraudConfig(f4_depth=2, f1_unknown_codes=3, f2_cards=2)
    ordered = [i for i in store_page(app, 1, 10**6) if i.envelope]
    reference = Projector(Database(f"sqlite:///{tmp_path}/ref-{seed}-{batch}.db"), config)
    reference.apply(ordered)
    queues: dict[str, list[Item]] = defaultdict(list)
    for item in ordered:
        queues[item.envelope["stream_id"]].append(item)  # type: ignore[index]
    rng = random.Random(seed)
    shuffled: list[Item] = []
    while queues:
        stream = rng.choice(sorted(queues))
        shuffled.append(queues[stream].pop(0))
        if not queues[stream]:
            del queues[stream]
    other = Projector(Database(f"sqlite:///{tmp_path}/mix-{seed}-{batch}.db"), config)
    for start in range(0, len(shuffled), batch):
        part = shuffled[start : start + batch]
        other.apply([Item("kafka", n + start, 0, i.envelope) for n, i in enumerate(part)])
    assert schema.dump(other.db) == schema.dump(reference.db)
    alerts = {a["rule"] for a in queries.alerts(reference.db)["alerts"]}
    assert {"F1", "F2", "F4", "F5", "F6"} <= alerts


def test_rebuild_drops_and_recreates_every_view(memory_service, sync, views):
    buy(memory_service.app)
    sync()
    views.reset()
    assert all(rows == [] for rows in schema.dump(views.db).values())
    assert views.positions(STORE) == {}
    sync()
    assert len(schema.dump(views.db)["view_balance"]) == 1
