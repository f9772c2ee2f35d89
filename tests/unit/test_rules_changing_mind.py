"""Rules R16-R20 (changing one's mind), given events / when command / then events."""

from __future__ import annotations

from datetime import date

import pytest

from application.card_base import iso
from application.cards import GiftCards
from application.commands import CancelCard, RefundOrder
from application.results import Purchase
from infra.bootstrap import Service
from tests.conftest import FixedClock
from tests.store_ids import store_id
from tests.unit.rules_helpers import buy, event_count, events, pay, refused, types


def paid_order(app: GiftCards, clock: FixedClock, day: str, order: str, total: int = 8000,
               amount: int = 5000, market: str = "FR") -> Purchase:
    """Given: a card bought and used on `order` on `day` (10:00 UTC)."""
    clock.set(f"{day}T10:00:00Z")
    card = buy(app, amount=amount, market=market)
    pay(app, card.code, order, total, market=market)
    return card


@pytest.mark.parametrize(
    ("market", "received", "deadline", "day_after"),
    [
        ("FR", "2026-02-02", "2026-03-04", "2026-03-05"),  # day 30 a Wednesday: no move
        ("FR", "2026-02-05", "2026-03-09", "2026-03-10"),  # day 30 Saturday 7 March
        ("FR", "2026-06-14", "2026-07-15", "2026-07-16"),  # day 30 Tuesday 14 July
        ("FR", "2026-07-16", "2026-08-17", "2026-08-18"),  # day 30 Saturday 15 August
        ("FR", "2026-10-02", "2026-11-02", "2026-11-03"),  # day 30 Sunday 1 November
        ("FR", "2026-11-25", "2026-12-28", "2026-12-29"),  # Christmas Friday, then weekend
        ("GB", "2026-11-25", "2026-12-29", "2026-12-30"),  # ... and Boxing Day moved to Monday
    ],
)
def test_r16_withdrawal_30_days_after_receipt_moved_to_next_working_day(
    memory_service: Service, clock: FixedClock, market: str, received: str, deadline: str,
    day_after: str,
) -> None:
    app = memory_service.app
    paid_order(app, clock, received, "order-16", market=market)
    on = date.fromisoformat(received)
    clock.set(f"{deadline}T10:00:00Z")
    accepted = app.refund(RefundOrder(order_id="order-16", returned_amount=1000, received_on=on))
    assert accepted.new_card.amount == 1000
    clock.set(f"{day_after}T10:00:00Z")
    with refused("withdrawal_period_over") as caught:
        app.refund(RefundOrder(order_id="order-16", returned_amount=1000, received_on=on))
    assert deadline in caught.value.message


def test_r16_deadline_counts_in_the_market_local_day(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    paid_order(app, clock, "2026-02-02", "order-16b")
    on = date(2026, 2, 2)
    clock.set("2026-03-04T22:59:00Z")  # 23:59 in Paris, still the last day
    app.refund(RefundOrder(order_id="order-16b", returned_amount=1000, received_on=on))
    clock.set("2026-03-04T23:01:00Z")  # 00:01 on 5 March in Paris
    with refused("withdrawal_period_over"):
        app.refund(RefundOrder(order_id="order-16b", returned_amount=1000, received_on=on))


@pytest.mark.parametrize("received", [date(2026, 2, 1), date(2026, 2, 10)])
def test_r16_receipt_before_the_order_or_in_the_future_is_refused(
    memory_service: Service, clock: FixedClock, received: date
) -> None:
    app = memory_service.app
    paid_order(app, clock, "2026-02-02", "order-16c")
    clock.set("2026-02-05T10:00:00Z")
    count = event_count(memory_service)
    with refused("invalid_date"):
        app.refund(RefundOrder(order_id="order-16c", returned_amount=1000, received_on=received))
    assert event_count(memory_service) == count


def test_r16_unknown_order_is_refused(memory_service: Service) -> None:
    with refused("unknown_order"):
        memory_service.app.refund(RefundOrder(
            order_id="nope", returned_amount=1, received_on=date(2026, 1, 1),
        ))


def test_r17_refund_is_a_new_card_with_new_code_full_validity_and_lineage(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    original = paid_order(app, clock, "2026-02-02", "order-17", total=5000, amount=5000)
    clock.set("2026-02-20T08:00:00Z")
    back = app.refund(RefundOrder(
        order_id="order-17", returned_amount=5000, received_on=date(2026, 2, 10),
    ))
    new = back.new_card
    assert new.card_id != original.card_id
    assert new.code != original.code and len(new.code) >= 16
    assert iso(new.expires_at) == "2026-08-20T08:00:00Z"
    assert back.to_other_method == 0
    assert app.show(original.card_id).replaced_by == (new.card_id,)
    shown = app.show(new.card_id)
    assert shown.replaces == original.card_id
    assert (shown.amount, shown.balance, shown.status) == (5000, 5000, "active")
    assert types(app, new.card_id) == ["Purchased", "Activated"]
    assert events(app, new.card_id)[0].payment_method == "refund"
    refunded = events(app, original.card_id)[-1]
    assert (type(refunded).__name__, refunded.new_card_id) == ("Refunded", new.card_id)
    assert pay(app, new.code, "order-17b", 2000).applied == 2000


def test_r17_refund_card_cannot_be_cancelled_for_cash(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    paid_order(app, clock, "2026-02-02", "order-17c", total=5000)
    new = app.refund(RefundOrder(
        order_id="order-17c", returned_amount=5000, received_on=date(2026, 2, 2),
    ))
    with refused("cancellation_period_over"):
        app.cancel(CancelCard(card_id=new.new_card.card_id, code=new.new_card.code))


def test_r18_mixed_payment_card_part_first_then_other_method(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    original = paid_order(app, clock, "2026-02-02", "order-18", total=8000, amount=5000)
    on = date(2026, 2, 3)
    clock.set("2026-02-10T10:00:00Z")
    parts = [app.refund(RefundOrder(order_id="order-18", returned_amount=n, received_on=on))
             for n in (2000, 4000, 2000)]
    to_card = [p.new_card.amount if p.new_card else 0 for p in parts]
    to_other = [p.to_other_method for p in parts]
    assert to_card == [2000, 3000, 0] and to_other == [0, 1000, 2000]
    assert sum(to_card) == 5000 and sum(to_other) == 3000
    assert len(app.show(original.card_id).replaced_by) == 2
    with refused("refund_exceeds_paid"):
        app.refund(RefundOrder(order_id="order-18", returned_amount=1, received_on=on))


def test_r18_return_above_the_order_total_is_refused(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    paid_order(app, clock, "2026-02-02", "order-18b", total=8000, amount=5000)
    count = event_count(memory_service)
    with refused("refund_exceeds_paid"):
        app.refund(RefundOrder(
            order_id="order-18b", returned_amount=8001, received_on=date(2026, 2, 2),
        ))
    with refused("invalid_amount"):
        app.refund(RefundOrder(
            order_id="order-18b", returned_amount=0, received_on=date(2026, 2, 2),
        ))
    assert event_count(memory_service) == count


def test_r19_cancel_unused_card_within_14_days_refunds_original_payment(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    card = buy(app, amount=4200, order_id="order-19")
    clock.set("2026-01-26T22:30:00Z")  # day 14, 23:30 in Paris
    done = app.cancel(CancelCard(card_id=card.card_id, code=card.code, order_id="order-19"))
    assert done.status == "cancelled"
    assert (done.amount, done.currency) == (4200, "EUR")
    cancelled = events(app, card.card_id)[-1]
    assert (cancelled.refund_amount, cancelled.refund_method) == (4200, "original_payment")
    count = event_count(memory_service)
    assert app.cancel(CancelCard(card_id=card.card_id, code=card.code)) == done
    assert event_count(memory_service) == count
    with refused("cancelled"):
        pay(app, card.code, "order-19b", 1000)


def test_r19_day_15_is_too_late(memory_service: Service, clock: FixedClock) -> None:
    app = memory_service.app
    card = buy(app, order_id="order-19c")
    clock.set("2026-01-26T23:30:00Z")  # 00:30 on 27 January in Paris: day 15
    with refused("cancellation_period_over") as caught:
        app.cancel(CancelCard(card_id=card.card_id, code=card.code, order_id="order-19c"))
    assert "2026-01-26" in caught.value.message
    assert types(app, card.card_id) == ["Purchased", "Activated"]


def test_r19_a_used_card_cannot_be_cancelled(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app, order_id="order-19d")
    pay(app, card.code, "order-19e", 100)
    with refused("card_already_used"):
        app.cancel(CancelCard(card_id=card.card_id, code=card.code, order_id="order-19d"))


def test_r19_an_expired_card_cannot_be_cancelled(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    card = buy(app)
    clock.set("2026-08-01T00:00:00Z")
    app.expire()
    with refused("cancellation_period_over"):
        app.cancel(CancelCard(card_id=card.card_id, code=card.code))


def test_r20_cancel_checks_code_and_order_number(memory_service: Service) -> None:
    app = memory_service.app
    card, other = buy(app, order_id="order-20"), buy(app, order_id="order-20x")
    card_id = card.card_id
    with refused("code_mismatch") as caught:
        app.cancel(CancelCard(card_id=card_id, code=other.code, order_id="order-20"))
    assert other.code not in caught.value.message
    with refused("code_mismatch"):
        app.cancel(CancelCard(card_id=card_id, code="AAAAAA-BBBBBB-CCCCCC", order_id="order-20"))
    with refused("order_mismatch"):
        app.cancel(CancelCard(card_id=card_id, code=card.code, order_id="order-20x"))
    assert types(app, card.card_id) == ["Purchased", "Activated"]
    assert app.cancel(CancelCard(
        card_id=card_id, code=card.code, order_id="order-20",
    )).status == "cancelled"


def test_r17_refund_card_belongs_to_the_customer_who_paid_with_the_card(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    clock.set("2026-02-02T10:00:00Z")
    card = buy(app, buyer_id="giver")
    pay(app, card.code, "order-17d", 5000, customer_id="receiver")
    clock.set("2026-02-05T10:00:00Z")
    back = app.refund(RefundOrder(
        order_id="order-17d", returned_amount=5000, received_on=date(2026, 2, 3),
    ))
    issued = events(app, back.new_card.card_id)[0]
    assert issued.buyer_subject == store_id(memory_service, "receiver")
