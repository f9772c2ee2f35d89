"""application/checkout.py: typed results, declared prefetch keys, one-call cancellation."""

from __future__ import annotations

from datetime import date
from typing import TypeVar
from uuid import UUID

from application.cards import GiftCards
from application.checkout import Cancelled, Checkout, Ordered, Paid, Returned
from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from application.unit_of_work import UnitOfWork
from domain.base import Aggregate
from domain.delivery import CodeDelivery
from infra.bootstrap import Service
from tests.conftest import FixedClock
from tests.store_ids import store_id
from tests.unit.rules_helpers import BUYER, buy, pay, refused

A = TypeVar("A", bound=Aggregate)


class Watched(UnitOfWork):
    """Records every stream a command had to read outside what was prefetched."""

    def __init__(self, app: GiftCards) -> None:
        super().__init__(app)
        self.misses: list[UUID] = []

    def get(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        if aggregate_id not in (self.changed.keys() | self.loaded.keys() | self.absent):
            self.misses.append(aggregate_id)
        return super().get(aggregate_id, kind)


def prefetched(app: GiftCards, keys: list[UUID]) -> Watched:
    uow = Watched(app)
    uow.prefetch(keys)
    uow.prefetch_targets()
    return uow


def outbox(uow: UnitOfWork) -> list[CodeDelivery]:
    return [a for a in uow.changed.values() if isinstance(a, CodeDelivery)]


def test_r1_r3_order_reads_only_what_it_declares_and_mails_the_code_once(service: Service) -> None:
    checkout = Checkout(service.app)
    for attempt in range(2):
        uow = prefetched(service.app, checkout.order_keys("o-1"))
        ordered = checkout.order(uow, PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id=BUYER, order_id="o-1"))
        sealed = outbox(uow)
        uow.commit()
        assert isinstance(ordered, Ordered) and uow.misses == []
        assert "code" not in ordered.reply() and "delivery" not in ordered.reply()
        if attempt == 0:  # R7: the code sealed for the buyer in the card's transaction
            assert [(d.card_id, d.buyer_subject) for d in sealed] == [
                (UUID(ordered.card_id), store_id(service, BUYER))
            ]
        else:
            assert sealed == []  # the repeated order mails nothing


def test_r8_r11_pay_and_r16_return_read_only_what_they_declare(
    service: Service, clock: FixedClock
) -> None:
    app, checkout = service.app, Checkout(service.app)
    clock.set("2026-02-02T10:00:00Z")
    card = buy(app)
    uow = prefetched(app, checkout.pay_keys("pay-1", "cust-2", "test", card.code))
    paid = checkout.pay(uow, RedeemCard(
        code=card.code, market="FR", order_id="pay-1", order_total=8000, customer_id="cust-2",
        source="test", promo_codes=(), contains_gift_card=False))
    uow.commit()
    assert isinstance(paid, Paid) and uow.misses == []
    assert paid.reply() == {"card_id": str(card.card_id), "applied": 5000,
                            "remaining_to_pay": 3000, "forfeited": 0, "currency": "EUR"}
    uow = prefetched(app, checkout.return_keys("pay-1", "m-1"))
    returned = checkout.return_items(uow, RefundOrder(
        order_id="pay-1", returned_amount=8000, received_on=date(2026, 2, 2), request_id="m-1"))
    sealed = outbox(uow)
    uow.commit()
    assert isinstance(returned, Returned) and uow.misses == []
    assert (returned.to_new_card, returned.to_other_method) == (5000, 3000)
    assert [(str(d.card_id), d.kind, d.buyer_subject, d.refunds_order) for d in sealed] == [
        # R17: whoever paid the order, by their store id
        (returned.new_card_id, "refund", store_id(service, "cust-2"), "pay-1")
    ]


def test_r20_cancellation_by_purchase_order_is_one_call(service: Service) -> None:
    app, checkout = service.app, Checkout(service.app)
    card = buy(app, order_id="bought-1")
    with app.batch() as uow:
        cancelled = checkout.cancel(uow, CancelCard(order_id="bought-1"))
    assert isinstance(cancelled, Cancelled)
    assert cancelled.reply() == {"card_id": str(card.card_id), "currency": "EUR", "refunded": 5000}
    assert app.card(card.card_id).status == "cancelled"
    with refused("unknown_order"), app.batch() as uow:
        checkout.cancel(uow, CancelCard(order_id="never-bought"))


def test_r11_commands_in_a_batch_join_only_when_given_the_unit_of_work(service: Service) -> None:
    """No hidden joining: without `within=`, a command commits on its own at once."""
    app = service.app
    with app.batch() as uow:
        alone = buy(app, order_id="alone")
        joined = buy(app, order_id="joined", within=uow)
        assert app.card(alone.card_id) is not None
        with refused("unknown_card"):
            app.card(joined.card_id)
    assert app.card(joined.card_id).status == "active"
    pay(app, alone.code, "o-alone", 100)
