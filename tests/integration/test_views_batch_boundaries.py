"""The views do not depend on where batches begin and end: a varied history applied in batches
of any sizes (counters added up set-based per batch, erasures and objections flushing mid-batch)
gives the rows of the same history applied one event per transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from infra.bootstrap import Service
from projections import schema
from projections.runner import STORE, Projector
from projections.sources import store_page, sync_store
from tests.integration.test_determinism import attempt, views_db
from tests.unit.test_gdpr_privacy import act

Dump = dict[str, list[tuple[object, ...]]]


def varied_history(service: Service, clock: Any) -> None:
    """Purchases, redemptions, refusals, cancellations, refunds, expiries, an objection and an
    erasure, with attempts that trip every fraud rule (thresholds lowered in CONFIG)."""
    app, rng = service.app, random.Random(3)
    cards: list[tuple[Any, str]] = []

    def purchase(n: int, buyer: str, amount: int) -> None:
        market = rng.choice(["FR", "DE"])
        card = attempt(app.purchase, PurchaseCard(
            market=market, amount=amount, payment_method="card", buyer_id=buyer,
            order_id=f"buy-{n}",
        ))
        if card:
            cards.append((card, market))

    def redeem(card: Any, market: str, order: str, customer: str, total: int) -> Any:
        return attempt(app.redeem, RedeemCard(
            code=card.code, market=market, order_id=order, order_total=total, customer_id=customer,
            source="test",
        ))

    for n in range(4):  # F2: one buyer's burst
        clock.advance(minutes=5)
        purchase(n, "cust-burst", 30000)
    redeem(*cards[0], "pay-fast", "other-fast", 40000)  # F3: fast, by another customer
    for n in range(4, 40):
        clock.advance(minutes=rng.randint(1, 600))
        purchase(n, f"cust-{rng.randint(0, 6)}", rng.choice([1500, 5000, 30000]))
    for n, (card, market) in enumerate(cards[:12]):  # F3 on the big ones: fast, by another
        clock.advance(minutes=3)
        redeem(card, market, f"pay-{n}", f"other-{n % 3}", rng.choice([500, 40000]))
    for n, (card, _market) in enumerate(cards[12:18]):  # F5 then F6: wrong market, cancelled
        redeem(card, "IT", f"wrong-{n}", f"cust-{n}", 500)
        if n % 2 == 0:
            attempt(app.cancel, CancelCard(card_id=card.card_id))
    for n in range(4):  # F1: unknown codes
        attempt(app.redeem, RedeemCard(
            code=f"GUESS{n}", market="FR", order_id=f"guess-{n}", order_total=500,
            customer_id="guesser", source="test",
        ))
    act(service, "object", ["cust-1"], "req-object")
    order, market = "chain-0", cards[20][1]
    card = cards[20][0]
    for depth in range(3):  # F4: refunds onto replacement cards
        done = redeem(card, market, order, "cust-chain", 1000)
        refund = done and attempt(app.refund, RefundOrder(
            order_id=order, returned_amount=1000, received_on=clock.now.date(),
        ))
        if not refund or not refund.new_card:
            break
        card, order = refund.new_card, f"chain-{depth + 1}"
    for n, (card, market) in enumerate(cards[22:30]):
        clock.advance(minutes=7)
        redeem(card, market, f"late-{n}", f"cust-{n % 4}", 700)
    act(service, "erase", ["cust-2"], "req-erase")
    clock.advance(days=3 * 365)
    app.expire()


def apply_in_batches(service: Service, views: Projector, sizes: list[int]) -> None:
    """The store applied in pages of the given sizes, cycled."""
    start = views.positions(STORE).get(0, 0) + 1
    for size in itertools.cycle(sizes):
        page = store_page(service.app, start, size)
        if not page:
            return
        views.apply(page)
        start = page[-1].pos + 1


@pytest.fixture
def varied(service: Service, clock: Any, tmp_path: Path) -> tuple[Service, Dump, Projector]:
    """The history, its views applied one event per transaction, and empty views to batch."""
    varied_history(service, clock)
    per_event = views_db(service, tmp_path, "per-event.db")
    sync_store(service.app, per_event, batch_size=1)
    expected = schema.dump(per_event.db)
    assert {r[1] for r in expected["view_fraud_alerts"]} == {"F1", "F2", "F3", "F4", "F5", "F6"}
    assert expected["view_breakage"], "the history forfeits nothing"
    assert any(str(r[8]).startswith("erased_") for r in expected["view_balance"])
    return service, expected, views_db(service, tmp_path, "batched.db")


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12))
def test_r9_r11_p2_p4_views_equal_per_event_application_whatever_the_batch_sizes(
    varied: tuple[Service, Dump, Projector], sizes: list[int]
) -> None:
    service, expected, batched = varied
    batched.reset()
    apply_in_batches(service, batched, sizes)
    assert schema.dump(batched.db) == expected
