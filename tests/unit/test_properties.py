"""Invariants over any sequence of commands and clock moves (R9, R11, R14, R18, R19, replay)."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from application.results import CardView
from domain.errors import DomainError
from domain.giftcard import GiftCard
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET, FixedClock

ORDERS = [f"order-{i}" for i in range(6)]


def totals_from_events(history: list[Any]) -> dict[str, int]:
    """What became of a card's value, read from its events only (not from its state)."""
    sums = {"amount": 0, "applied": 0, "forfeited": 0, "cancelled": 0, "to_card": 0, "to_other": 0,
            "order_total": 0}
    for event in history:
        kind = type(event).__name__
        if kind == "Purchased":
            sums["amount"] += event.amount
        elif kind == "Redeemed":
            sums["applied"] += event.applied
            sums["forfeited"] += event.forfeited
            sums["order_total"] += event.order_total
        elif kind == "Expired":
            sums["forfeited"] += event.forfeited
        elif kind == "Cancelled":
            sums["cancelled"] += event.refund_amount
        elif kind == "Refunded":
            sums["to_card"] += event.to_new_card
            sums["to_other"] += event.to_other_method
    return sums


class CardLifecycle(RuleBasedStateMachine):
    """Random purchases, uses, cancellations, returns and expiries on one in-memory store."""

    cards = Bundle("cards")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock()
        env = {"GIFTCARDS_DATABASE_URL": "memory://", "GIFTCARDS_SECRET_KEY": SECRET}
        self.service = build(load_settings(env), clock=self.clock)
        self.app = self.service.app
        self.card_ids: list[UUID] = []
        self.paid_orders: dict[str, date] = {}

    def teardown(self) -> None:
        self.service.close()

    @rule(target=cards, amount=st.integers(1500, 52000), market=st.sampled_from(["FR", "GB"]),
          method=st.sampled_from(["card", "card", "card", "bnpl"]))
    def purchase(self, amount: int, market: str, method: str) -> tuple[UUID | None, str]:
        try:
            card = self.app.purchase(PurchaseCard(
                market=market, amount=amount, payment_method=method, buyer_id="c1",
                order_id=f"p-{len(self.card_ids)}-{amount}",
            ))
        except DomainError:
            return None, "NOPE00-NOPE00-NOPE00"
        self.card_ids.append(card.card_id)
        return card.card_id, card.code

    @rule(card=cards, order=st.sampled_from(ORDERS), total=st.integers(1, 80000),
          market=st.sampled_from(["FR", "FR", "GB"]), promo=st.booleans())
    def redeem(self, card: tuple[UUID | None, str], order: str, total: int, market: str,
               promo: bool) -> None:
        try:
            self.app.redeem(RedeemCard(
                code=card[1], market=market, order_id=order, order_total=total, source="test",
                promo_codes=["P"] if promo else [],
            ))
        except DomainError:
            return
        self.paid_orders.setdefault(order, self.clock().date())

    @rule(card=cards, with_code=st.booleans())
    def cancel(self, card: tuple[UUID | None, str], with_code: bool) -> None:
        if card[0] is None:
            return
        with contextlib.suppress(DomainError):
            self.app.cancel(CancelCard(
                card_id=card[0], code=card[1] if with_code else "AAAAAA-AAAAAA-AAAAAA",
            ))

    @precondition(lambda self: bool(self.paid_orders))
    @rule(data=st.data(), amount=st.integers(-10, 60000))
    def refund(self, data: st.DataObject, amount: int) -> None:
        order = data.draw(st.sampled_from(sorted(self.paid_orders)))
        with contextlib.suppress(DomainError):
            self.app.refund(RefundOrder(
                order_id=order, returned_amount=amount, received_on=self.paid_orders[order],
            ))

    @rule()
    def expire(self) -> None:
        self.app.expire()

    @rule(days=st.integers(0, 120), hours=st.integers(0, 23))
    def move_clock(self, days: int, hours: int) -> None:
        self.clock.advance(days=days, hours=hours)

    @invariant()
    def value_is_conserved_and_replay_is_faithful(self) -> None:
        new_cards = {card_id for card_id in self.app_card_ids() if card_id not in self.card_ids}
        for card_id in self.app_card_ids():
            history = list(self.app.events.get(card_id))
            card = self.app.card(card_id)
            sums = totals_from_events(history)
            assert 0 <= card.balance <= card.amount == sums["amount"]
            assert sums["amount"] == (
                sums["applied"] + sums["forfeited"] + sums["cancelled"] + card.balance
            )
            # R18: never more back than was paid; the card part never above what the card paid.
            assert sums["to_card"] <= sums["applied"]
            assert sums["to_card"] + sums["to_other"] <= sums["order_total"]
            replayed: GiftCard | None = None
            for event in history:
                replayed = event.mutate(replayed)
            assert replayed is not None and CardView.of(replayed) == CardView.of(card)
            assert vars(replayed) == vars(card)
        issued = sum(self.app.card(c).amount for c in new_cards)
        returned = sum(totals_from_events(list(self.app.events.get(c)))["to_card"]
                       for c in self.card_ids)
        assert issued == returned  # R17: every card part of a refund is exactly one new card

    def app_card_ids(self) -> list[UUID]:
        ids = []
        for notification in self.app.recorder.select_notifications(1, 10**6):
            if notification.topic.endswith("GiftCard.Purchased"):
                ids.append(notification.originator_id)
        return ids


CardLifecycle.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_properties_card_lifecycle = CardLifecycle.TestCase
