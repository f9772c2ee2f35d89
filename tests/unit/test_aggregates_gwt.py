"""The rules the aggregates enforce, on the aggregates alone: given events, when a command,
then events (or a refusal with its stable code). The application-level rule tests stay beside."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.calendar import add_months
from domain.giftcard import GiftCard
from domain.markets import Markets
from domain.streams import CheckoutAttempts, Index, stream_id
from domain.subjects import TERMS, DataSubject
from tests.unit.gwt import STREAM, given, made

MARKETS = Markets.load()
FR, DE = MARKETS.get("FR"), MARKETS.get("DE")
T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)  # a Monday
T1 = T0 + timedelta(days=1)
EXPIRES = add_months(T0, 6)
NEW_CARD = UUID(int=2)


def card_event(
    cls: type[Any], at: datetime = T1, correlation_id: str = "O-1", **fields: Any
) -> Any:
    """An event of the card STREAM on FR, the day after its purchase unless `at` says."""
    return made(cls, market="FR", currency="EUR", terms_version=FR.terms_version, at=at,
                correlation_id=correlation_id, **fields)


def purchased(**overrides: Any) -> GiftCard.Purchased:
    fields: dict[str, Any] = {
        "market": "FR", "currency": "EUR", "amount": 5000, "at": T0, "expires_at": EXPIRES,
        "payment_method": "card", "code_last4": "WXYZ", "buyer_subject": "cust-1", "pii": {},
        "replaces": None, "terms_version": FR.terms_version, "correlation_id": "P-1",
    }
    fields.update(overrides)
    return made(GiftCard.Purchased, GiftCard, **fields)


ACTIVATED = card_event(GiftCard.Activated, at=T0, correlation_id="P-1")


def redeemed(applied: int = 5000, order_total: int = 8000, at: datetime = T1) -> Any:
    return card_event(GiftCard.Redeemed, at=at, order_id="O-1", order_total=order_total,
                      applied=applied, remaining_to_pay=order_total - applied,
                      forfeited=5000 - applied, customer_id="cust-2")


def buy(amount: int = 5000, method: str = "card") -> Any:
    return lambda _: GiftCard.purchase(
        market=FR, amount=amount, payment_method=method, now=T0, code_last4="WXYZ",
        buyer_subject="cust-1", pii={}, order_id="P-1",
    )


def pay(total: int = 8000, market: Any = FR, now: datetime = T1, **extra: Any) -> Any:
    command: dict[str, Any] = {"promo_codes": [], "contains_gift_card": False}
    command.update(extra)
    return lambda card: card.redeem(market=market, order_id="O-1", order_total=total,
                                    customer_id="cust-2", now=now, **command)


def cancel(now: datetime = T1) -> Any:
    return lambda card: card.cancel(market=FR, now=now, correlation_id="P-1")


def paris(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour - 1, tzinfo=UTC)  # CET, winter


# --- buying ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [2000, 50000])
def test_r1_r4_gwt_purchase_within_bounds_is_purchased_then_activated(amount: int) -> None:
    card = given().when(buy(amount)).then(purchased(amount=amount), ACTIVATED)
    assert card.status == "active" and card.balance == amount


@pytest.mark.parametrize("amount", [1999, 50001])
def test_r1_gwt_amount_outside_20_to_500_is_refused(amount: int) -> None:
    given().when(buy(amount)).then_refused("amount_out_of_range")


@pytest.mark.parametrize("method", ["bnpl", "promo_code", "gift_card"])
def test_r2_gwt_only_a_bank_card_pays_for_a_card(method: str) -> None:
    given().when(buy(method=method)).then_refused("payment_method_not_allowed")


def test_r3_gwt_an_order_id_always_names_the_same_index_stream() -> None:
    index = given().when(lambda _: Index.register("purchase-order", "P-1", STREAM)).then(
        made(Index.Registered, Index, target=STREAM)
    )
    # A second purchase with this order id writes the same stream, so the store refuses it.
    assert index.id == stream_id("purchase-order", "P-1") == Index.register(
        "purchase-order", "P-1", NEW_CARD).id


# --- using -------------------------------------------------------------------------------


def test_r6_gwt_a_card_is_refused_on_another_market() -> None:
    given(purchased(), ACTIVATED).when(pay(market=DE)).then_refused("wrong_market")


def test_r8_gwt_an_unknown_code_is_recorded_without_the_code() -> None:
    opened = made(CheckoutAttempts.Opened, CheckoutAttempts, customer_id="cust-x")
    given(opened).when(lambda attempts: attempts.record_unknown_code(
        order_id="O-9", market="FR", currency="EUR", at=T1, terms_version=FR.terms_version,
        correlation_id="O-9",
    )).then(card_event(CheckoutAttempts.UnknownCodeTried, correlation_id="O-9",
                       customer_id="cust-x", order_id="O-9"))
    assert not [name for name in CheckoutAttempts.UnknownCodeTried.model_fields if "code" in name]


def test_r9_gwt_redeeming_at_the_expiry_instant_is_refused() -> None:
    given(purchased(), ACTIVATED).when(pay(now=EXPIRES)).then_refused("expired")


def test_r9_gwt_expiry_forfeits_the_whole_balance() -> None:
    card = given(purchased(), ACTIVATED).when(
        lambda c: c.expire(now=EXPIRES, terms_version=FR.terms_version)
    ).then(card_event(GiftCard.Expired, at=EXPIRES, correlation_id=f"expiry:{STREAM}",
                      forfeited=5000))
    assert (card.status, card.balance) == ("expired", 0)


def test_r9_gwt_expire_before_the_date_or_twice_changes_nothing() -> None:
    expire = lambda c: c.expire(now=EXPIRES, terms_version=FR.terms_version)  # noqa: E731
    given(purchased(), ACTIVATED).when(
        lambda c: c.expire(now=EXPIRES - timedelta(seconds=1), terms_version=FR.terms_version)
    ).then_returns(False)
    expired = card_event(GiftCard.Expired, at=EXPIRES, correlation_id=f"expiry:{STREAM}",
                         forfeited=5000)
    given(purchased(), ACTIVATED, expired).when(expire).then_returns(False)


def test_r9_gwt_a_refused_attempt_is_recorded_and_changes_nothing_else() -> None:
    refused = card_event(GiftCard.RedemptionRefused, at=EXPIRES, order_id="O-1",
                         reason="expired", attempted_market="FR", customer_id="cust-2")
    card = given(purchased(), ACTIVATED).when(lambda c: c.record_refusal(
        order_id="O-1", reason="expired", attempted_market="FR", customer_id="cust-2",
        at=EXPIRES, terms_version=FR.terms_version,
    )).then(refused)
    assert (card.status, card.balance, card.refused_attempts) == ("active", 5000, 1)


def test_r11_gwt_the_remainder_is_forfeited_on_first_use() -> None:
    card = given(purchased(), ACTIVATED).when(pay(total=3000)).then(
        redeemed(applied=3000, order_total=3000)
    )
    assert (card.status, card.balance) == ("redeemed", 0)


def test_r11_gwt_a_second_use_is_refused() -> None:
    given(purchased(), ACTIVATED, redeemed()).when(pay()).then_refused("already_redeemed")


def test_r12_gwt_the_rest_of_the_order_is_left_to_another_method() -> None:
    given(purchased(), ACTIVATED).when(pay(total=8000)).then(redeemed(5000, 8000))


def test_r13_gwt_not_combinable_with_promo_codes() -> None:
    given(purchased(), ACTIVATED).when(pay(promo_codes=["WELCOME"])).then_refused(
        "not_combinable"
    )


def test_r13_gwt_a_gift_card_cannot_pay_for_a_gift_card() -> None:
    given(purchased(), ACTIVATED).when(pay(contains_gift_card=True)).then_refused(
        "gift_card_purchase_not_allowed"
    )


def test_r14_gwt_a_card_issued_as_a_refund_cannot_be_cancelled_into_cash() -> None:
    refund_card = purchased(payment_method="refund", replaces=NEW_CARD, correlation_id="O-1")
    given(refund_card, ACTIVATED).when(cancel()).then_refused("cancellation_period_over")


# --- changing one's mind -----------------------------------------------------------------


def split(amount: int, received: date, now: datetime) -> Any:
    return lambda card: card.split_refund(FR, amount, received, now)


def test_r16_gwt_withdrawal_deadline_on_a_sunday_moves_to_monday() -> None:
    # Received Friday 16 Jan: day 30 is Sunday 15 Feb, so the deadline is Monday 16 Feb.
    used = (purchased(), ACTIVATED, redeemed())
    given(*used).when(split(1000, date(2026, 1, 16), paris(date(2026, 2, 16)))).then_returns(
        (1000, 0)
    )
    given(*used).when(split(1000, date(2026, 1, 16), paris(date(2026, 2, 17)))).then_refused(
        "withdrawal_period_over"
    )


def test_r16_gwt_receipt_before_the_order_is_refused() -> None:
    given(purchased(), ACTIVATED, redeemed()).when(
        split(1000, date(2026, 1, 12), paris(date(2026, 1, 20)))
    ).then_refused("invalid_date")


def test_r16_gwt_an_unused_card_paid_no_order() -> None:
    given(purchased(), ACTIVATED).when(
        split(1000, date(2026, 1, 14), paris(date(2026, 1, 20)))
    ).then_refused("unknown_order")


def test_r17_gwt_refund_is_a_new_card_with_full_validity_and_lineage() -> None:
    later = T1 + timedelta(days=3)
    new = given(purchased(), ACTIVATED, redeemed()).when(
        lambda original: GiftCard.issue_replacement(
            original=original, market=FR, amount=3000, now=later, code_last4="NEW1",
            order_id="O-1",
        )
    ).then(
        purchased(amount=3000, at=later, expires_at=add_months(later, 6),
                  payment_method="refund", code_last4="NEW1", buyer_subject="cust-2",
                  replaces=STREAM, correlation_id="O-1"),
        card_event(GiftCard.Activated, at=later),
    )
    assert new.id != STREAM and new.replaces == STREAM


def test_r17_gwt_the_original_card_records_the_refund_and_its_new_card() -> None:
    card = given(purchased(), ACTIVATED, redeemed()).when(lambda c: c.record_refund(
        order_id="O-1", returned_amount=3000, to_new_card=3000, to_other_method=0,
        new_card_id=NEW_CARD, received_on=date(2026, 1, 14), at=T1,
        terms_version=FR.terms_version,
    )).then(card_event(GiftCard.Refunded, order_id="O-1", returned_amount=3000,
                       to_new_card=3000, to_other_method=0, new_card_id=NEW_CARD,
                       received_on=date(2026, 1, 14)))
    assert card.replaced_by == [NEW_CARD] and card.refunded_to_card == 3000


def test_r18_gwt_mixed_payment_card_part_first_then_the_other_method() -> None:
    # 80.00 order: 50.00 by card, 30.00 otherwise.
    when = paris(date(2026, 1, 20))
    given(purchased(), ACTIVATED, redeemed()).when(split(6000, date(2026, 1, 14), when)) \
        .then_returns((5000, 1000))
    refunded = card_event(GiftCard.Refunded, order_id="O-1", returned_amount=6000,
                          to_new_card=5000, to_other_method=1000, new_card_id=NEW_CARD,
                          received_on=date(2026, 1, 14))
    given(purchased(), ACTIVATED, redeemed(), refunded).when(
        split(2000, date(2026, 1, 14), when)
    ).then_returns((0, 2000))
    given(purchased(), ACTIVATED, redeemed(), refunded).when(
        split(2001, date(2026, 1, 14), when)
    ).then_refused("refund_exceeds_paid")


def test_r19_gwt_cancel_within_14_days_refunds_the_original_payment() -> None:
    card = given(purchased(), ACTIVATED).when(cancel(paris(date(2026, 1, 26), 23))).then(
        card_event(GiftCard.Cancelled, at=paris(date(2026, 1, 26), 23), correlation_id="P-1",
                   refund_amount=5000, refund_method="original_payment")
    )
    assert (card.status, card.balance) == ("cancelled", 0)


def test_r19_gwt_day_15_is_too_late() -> None:
    given(purchased(), ACTIVATED).when(cancel(paris(date(2026, 1, 27), 1))).then_refused(
        "cancellation_period_over"
    )


def test_r19_gwt_a_used_card_cannot_be_cancelled() -> None:
    given(purchased(), ACTIVATED, redeemed()).when(cancel()).then_refused("card_already_used")


def test_r19_gwt_a_cancelled_card_is_not_cancelled_twice() -> None:
    cancelled = card_event(GiftCard.Cancelled, correlation_id="P-1", refund_amount=5000,
                           refund_method="original_payment")
    given(purchased(), ACTIVATED, cancelled).when(cancel()).then_refused("cancelled")


def test_r20_gwt_a_refused_attempt_is_not_a_use_and_the_card_can_be_cancelled() -> None:
    attempt = card_event(GiftCard.RedemptionRefused, order_id="O-1", reason="not_combinable",
                         attempted_market="FR", customer_id="cust-2")
    given(purchased(), ACTIVATED, attempt).when(cancel()).then(
        card_event(GiftCard.Cancelled, correlation_id="P-1", refund_amount=5000,
                   refund_method="original_payment")
    )


# --- data subjects -----------------------------------------------------------------------


def subject_event(cls: type[Any], request_id: str) -> Any:
    return made(cls, subject_id="cust-1", request_id=request_id, at=T1, market=None,
                currency=None, terms_version=TERMS, correlation_id=request_id)


def test_p2_p4_gwt_each_request_id_is_recorded_once() -> None:
    opened = made(DataSubject.Opened, DataSubject, subject_id="cust-1")
    erased = subject_event(DataSubject.Erased, "R-1")
    given(opened).when(lambda s: s.erase(request_id="R-1", at=T1)).then(erased)
    given(opened, erased).when(lambda s: s.erase(request_id="R-1", at=T1)).then_returns(False)
    subject = given(opened, erased).when(
        lambda s: s.object_to_profiling(request_id="R-2", at=T1)
    ).then(subject_event(DataSubject.ObjectedToProfiling, "R-2"))
    assert subject.objects_to_profiling and subject.erasures == ["R-1"]


def test_gwt_helper_fails_on_a_wrong_event_a_wrong_code_or_an_unexpected_result() -> None:
    """The helper itself: each kind of mismatch is caught."""
    with pytest.raises(AssertionError):
        given(purchased(), ACTIVATED).when(pay(total=8000)).then(redeemed(4999, 8000))
    with pytest.raises(AssertionError):
        given(purchased(), ACTIVATED).when(pay(total=8000)).then()
    with pytest.raises(AssertionError):
        given(purchased(), ACTIVATED).when(pay(market=DE)).then_refused("expired")
    with pytest.raises(AssertionError):
        given(purchased(), ACTIVATED).when(pay()).then_refused("wrong_market")
    with pytest.raises(AssertionError):  # a query must not record anything
        given(purchased(), ACTIVATED).when(pay()).then_returns(None)
