"""Holds: authorize, capture, void and time-out, with R6, R11, R19 and R20 on top."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

from application.checkout import Checkout, Paid
from application.commands import (
    AuthorizeHold,
    CancelCard,
    CaptureHold,
    LookUpCard,
    RedeemCard,
    VoidHold,
)
from application.holds import Holds
from application.results import HoldState
from domain.errors import DomainError
from domain.giftcard import GiftCard
from infra.bootstrap import Service
from infra.db import Database
from projections.runner import Projector
from projections.sources import sync_store
from projections.verify import verify_card
from tests.conftest import FixedClock
from tests.unit.rules_helpers import buy, pay


def authorize(holds: Holds, code: str, order_id: str, total: int = 3000) -> HoldState:
    return holds.authorize(AuthorizeHold(
        code=code, market="FR", order_id=order_id, order_total=total, customer_id="cust-2",
        source="test",
    ))


def event_types(service: Service, card_id: str) -> list[str]:
    return [type(e).__name__ for e in service.app.events.get(UUID(card_id))]


def test_r11_a_hold_is_captured_once_as_the_single_use(memory_service: Service) -> None:
    app, holds = memory_service.app, Holds(memory_service.app)
    card = buy(app)
    held = authorize(holds, card.code, "shop-1")
    assert (held.amount, held.status) == (3000, "held")
    assert authorize(holds, card.code, "shop-1") == held  # idempotent on the order
    captured = holds.capture(CaptureHold(order_id="shop-1"))
    assert (captured.applied, captured.forfeited) == (3000, 2000)
    assert holds.capture(CaptureHold(order_id="shop-1")) == captured
    assert event_types(memory_service, str(card.card_id)).count("Held") == 1
    assert event_types(memory_service, str(card.card_id))[-1] == "Redeemed"


def test_r10_a_held_card_serves_no_other_order_and_r19_cannot_be_cancelled(
    memory_service: Service,
) -> None:
    app, holds = memory_service.app, Holds(memory_service.app)
    card = buy(app, order_id="p-1")
    authorize(holds, card.code, "shop-1")
    for attempt in (
        lambda: authorize(holds, card.code, "shop-2"),
        lambda: pay(app, card.code, "shop-3", 1000),
        lambda: app.cancel(CancelCard(card_id=None, code=card.code, order_id="p-1")),
    ):
        with pytest.raises(DomainError) as refusal:
            attempt()
        assert refusal.value.code == "card_on_hold"


def test_void_releases_and_a_timed_out_hold_is_released_on_access_and_by_the_sweep(
    memory_service: Service, clock: FixedClock
) -> None:
    app, holds = memory_service.app, Holds(memory_service.app, hold_seconds=60)
    card = buy(app)
    authorize(holds, card.code, "shop-1")
    assert holds.void(VoidHold(order_id="shop-1")).status == "voided"
    with pytest.raises(DomainError) as refusal:
        holds.capture(CaptureHold(order_id="shop-1"))
    assert refusal.value.code == "hold_released"
    authorize(holds, card.code, "shop-2")
    clock.advance(seconds=61)
    authorize(holds, card.code, "shop-3")  # the timed-out hold is released first
    released = [e for e in app.events.get(card.card_id)
                if isinstance(e, GiftCard.HoldReleased)]
    assert [(e.order_id, e.reason) for e in released] == [("shop-1", "voided"),
                                                          ("shop-2", "timed_out")]
    assert released[1].at < clock.now  # dated when it ran out, not when it was noticed
    other = buy(app)
    authorize(holds, other.code, "shop-4")
    clock.advance(seconds=61)
    assert holds.release_timed_out().released == 2
    assert holds.release_timed_out().released == 0


def test_r6_lookup_and_authorize_answer_a_wrong_market_code_like_an_unknown_one(
    memory_service: Service,
) -> None:
    app, holds = memory_service.app, Holds(memory_service.app)
    card = buy(app)
    answers = []
    for code, market in ((card.code, "DE"), ("AAAAAA-BBBBBB-CCCCCC", "FR")):
        with pytest.raises(DomainError) as refusal:
            holds.lookup(LookUpCard(code=code, market=market, source="key-1"))
        answers.append((refusal.value.code, refusal.value.message))
    assert answers[0] == answers[1] == ("unknown_code", "no gift card matches this code")


def test_checkout_completed_for_the_holding_order_captures_the_hold(
    memory_service: Service,
) -> None:
    app, holds, checkout = memory_service.app, Holds(memory_service.app), Checkout(
        memory_service.app)
    card = buy(app)
    authorize(holds, card.code, "shop-1", total=8000)
    with app.batch() as uow:
        paid = checkout.pay(uow, RedeemCard(code=card.code, market="FR", order_id="shop-1",
                                        order_total=8000, customer_id="cust-2",
                                        source="checkout"))
    assert isinstance(paid, Paid) and (paid.applied, paid.remaining_to_pay) == (5000, 3000)
    assert holds.capture(CaptureHold(order_id="shop-1")).applied == 5000  # captured already
    assert app.card(card.card_id).held_for is None


def test_simulate_decides_fully_and_stores_nothing(memory_service: Service) -> None:
    app, holds = memory_service.app, Holds(memory_service.app)
    card = buy(app)
    before = len(list(app.events.get(card.card_id)))
    held = holds.authorize(AuthorizeHold(
        code=card.code, market="FR", order_id="sim", order_total=100, customer_id=None,
        source="test",
    ), simulate=True)
    assert held.status == "held"
    assert len(list(app.events.get(card.card_id))) == before
    with pytest.raises(DomainError) as refusal:
        holds.authorize(AuthorizeHold(
            code=card.code, market="FR", order_id="sim", order_total=100, customer_id=None,
            source="test", promo_codes=["X"],
        ), simulate=True)
    assert refusal.value.code == "not_combinable"


def test_r17_refund_card_validity_is_a_market_setting(memory_service: Service) -> None:
    fr = memory_service.app.markets.get("FR")
    assert fr.refund_validity_months == 6
    longer = fr.model_copy(update={"refund_validity_months": 12})
    original = buy(memory_service.app)
    card = memory_service.app.card(original.card_id)
    new = GiftCard.issue_replacement(original=card, market=longer, amount=1000,
                                     now=card.purchased_at, code_last4="ABCD", order_id="r-1")
    assert (new.expires_at.year, new.expires_at.month) == (
        card.purchased_at.year + (card.purchased_at.month + 11) // 12,
        (card.purchased_at.month + 11) % 12 + 1)


def test_r11_held_voided_and_captured_cards_project_and_their_audit_verifies(
    memory_service: Service, tmp_path: Path
) -> None:
    app, holds = memory_service.app, Holds(memory_service.app)
    views = Projector(Database(f"sqlite:///{tmp_path / 'views.sqlite3'}"))
    card = buy(app)
    authorize(holds, card.code, "shop-1")
    holds.void(VoidHold(order_id="shop-1"))
    authorize(holds, card.code, "shop-2")
    holds.capture(CaptureHold(order_id="shop-2"))
    sync_store(app, views)
    replayed, problems = verify_card(app, views.db, card.card_id)
    assert (replayed, problems) == (6, [])  # Purchased, Activated, Held, Released, Held, Redeemed
    row = views.db.execute("SELECT status, balance FROM view_balance WHERE card_id = ?",
                           [str(card.card_id)])
    assert tuple(row[0]) == ("redeemed", 0)
