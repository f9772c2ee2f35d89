"""Rules R6 and R8-R15 (using a card), given events / when command / then events."""

from __future__ import annotations

import math
from collections import Counter
from datetime import date

import pytest

from application.card_base import iso
from application.commands import CancelCard, RefundOrder
from domain.codes import ALPHABET, LENGTH, generate_code, normalize_code
from infra.bootstrap import Service
from tests.conftest import FixedClock
from tests.unit.rules_helpers import buy, event_count, events, pay, refused, stored_bytes, types


def test_r6_card_refused_on_another_market_and_still_usable_at_home(
    memory_service: Service,
) -> None:
    app = memory_service.app
    card = buy(app, market="FR")
    with refused("wrong_market") as caught:
        pay(app, card.code, "o-de", 3000, market="DE")
    assert "FR" in caught.value.message
    assert types(app, card.card_id)[-1] == "RedemptionRefused"
    assert events(app, card.card_id)[-1].attempted_market == "DE"
    assert app.show(card.card_id).balance == 5000
    assert pay(app, card.code, "o-fr", 3000).applied == 3000


def test_r8_codes_are_long_unambiguous_and_carry_80_bits() -> None:
    assert not set("0O1IL") & set(ALPHABET)
    assert LENGTH * math.log2(len(set(ALPHABET))) >= 80
    codes = {generate_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        raw = normalize_code(code)
        assert len(raw) >= 16 and set(raw) <= set(ALPHABET)


def test_r8_every_symbol_is_equally_likely_at_every_position() -> None:
    """A biased or short draw (e.g. leading symbols stuck) shows up as a skewed position."""
    draws = 31 * 400
    columns = list(zip(*(normalize_code(generate_code()) for _ in range(draws)), strict=True))
    expected = draws / len(ALPHABET)
    spread = 6 * math.sqrt(expected)  # six standard deviations: a false alarm is ~1e-9
    for position, column in enumerate(columns):
        counts = Counter(column)
        assert set(counts) == set(ALPHABET), position
        assert all(abs(n - expected) < spread for n in counts.values()), (position, counts)


def test_r8_code_is_typed_at_checkout_in_any_case_and_grouping(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    typed = normalize_code(card.code).lower()
    assert pay(app, typed, "o-1", 1000).card_id == card.card_id


def test_r8_code_never_stored_only_hmac_index_and_last4(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    code = card.code
    with refused("wrong_market") as caught:
        pay(app, code, "o-1", 1000, market="GB")
    assert code not in caught.value.message
    pay(app, code, "o-2", 1000)
    raw = stored_bytes(app)
    for form in (code, normalize_code(code), normalize_code(code)[:12], code.lower()):
        assert form.encode() not in raw
    purchased = events(app, card.card_id)[0]
    assert purchased.code_last4 == normalize_code(code)[-4:]
    assert app.hasher.lookup_key(normalize_code(code)).encode() not in raw


def test_r8_unknown_code_is_refused_and_counted_without_the_code(memory_service: Service) -> None:
    app = memory_service.app
    buy(app)
    guess = "ABCDEF-GHJKMN-PQRSTU"
    with refused("unknown_code") as caught:
        pay(app, guess, "o-x", 1000, customer_id="mallory")
    assert guess not in caught.value.message
    topics = [n.topic for n in app.recorder.select_notifications(1, 100)]
    # Counted in the customer's window, and in the source's budget (R8).
    assert [t.rsplit(".", 1)[-1] for t in topics[-4:]] == [
        "Opened", "UnknownCodeTried", "Opened", "MissCounted"]
    assert normalize_code(guess).encode() not in stored_bytes(app)


def test_r9_card_expires_exactly_six_months_after_purchase(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    clock.set("2026-03-15T09:30:00Z")
    card = buy(app)
    assert iso(card.card.expires_at) == "2026-09-15T09:30:00Z"
    clock.set("2026-09-15T09:29:59Z")
    assert pay(app, card.code, "o-1", 1000).applied == 1000


@pytest.mark.parametrize(
    ("bought", "expires"),
    [
        ("2025-08-31T12:00:00Z", "2026-02-28T12:00:00Z"),
        ("2027-08-31T12:00:00Z", "2028-02-29T12:00:00Z"),
        ("2026-12-31T12:00:00Z", "2027-06-30T12:00:00Z"),
    ],
)
def test_r9_month_end_purchase_clamps_to_the_last_day(
    memory_service: Service, clock: FixedClock, bought: str, expires: str
) -> None:
    clock.set(bought)
    assert iso(buy(memory_service.app).card.expires_at) == expires


def test_r9_redeem_after_expiry_refused_and_balance_forfeited(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    card = buy(app, amount=7000)
    clock.set("2026-07-12T10:00:00Z")
    with refused("expired") as caught:
        pay(app, card.code, "o-late", 1000)
    assert "2026-07-12" in caught.value.message
    assert types(app, card.card_id)[-2:] == ["Expired", "RedemptionRefused"]
    expired = events(app, card.card_id)[-2]
    assert expired.forfeited == 7000
    assert app.show(card.card_id).status == "expired"
    with refused("expired"):
        pay(app, card.code, "o-later", 1000)
    assert types(app, card.card_id).count("Expired") == 1


def test_r9_expire_twice_changes_nothing(memory_service: Service, clock: FixedClock) -> None:
    app = memory_service.app
    kept = buy(app, amount=2500)
    clock.advance(days=40)
    later = buy(app, amount=3000)
    clock.set("2026-08-01T00:00:00Z")
    first = app.expire()
    assert first.expired == 1 and first.forfeited == {"EUR": 2500}
    count = event_count(memory_service)
    second = app.expire()
    assert second.expired == 0 and second.forfeited == {}
    assert event_count(memory_service) == count
    assert app.show(kept.card_id).status == "expired"
    assert app.show(later.card_id).status == "active"


def test_r10_one_card_per_order(memory_service: Service) -> None:
    app = memory_service.app
    first, second = buy(app), buy(app)
    pay(app, first.code, "order-10", 8000)
    with refused("one_card_per_order"):
        pay(app, second.code, "order-10", 8000)
    assert app.show(second.card_id).balance == 5000


def test_r10_retry_of_the_same_order_and_code_returns_the_original_result(
    memory_service: Service,
) -> None:
    app = memory_service.app
    card = buy(app)
    first = pay(app, card.code, "order-11", 3000)
    count = event_count(memory_service)
    again = pay(app, card.code, "order-11", 3000)
    assert again == first
    assert types(app, card.card_id).count("Redeemed") == 1
    assert event_count(memory_service) == count


def test_r11_remainder_is_forfeited_on_first_use(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app, amount=5000)
    used = pay(app, card.code, "order-12", 1999)
    assert (used.applied, used.forfeited, used.remaining_to_pay) == (1999, 3001, 0)
    redeemed = events(app, card.card_id)[-1]
    assert (redeemed.applied, redeemed.forfeited) == (1999, 3001)
    assert app.show(card.card_id).balance == 0


def test_r11_second_use_is_refused(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    pay(app, card.code, "order-13", 1000)
    with refused("already_redeemed"):
        pay(app, card.code, "order-14", 1000)
    assert types(app, card.card_id).count("Redeemed") == 1


def test_r12_the_rest_of_the_order_is_paid_by_another_method(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app, amount=5000)
    used = pay(app, card.code, "order-15", 12345)
    assert (used.applied, used.remaining_to_pay, used.forfeited) == (5000, 7345, 0)
    assert events(app, card.card_id)[-1].remaining_to_pay == 7345


def test_r13_not_combinable_with_promo_codes(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    with refused("not_combinable"):
        pay(app, card.code, "order-16", 3000, promo_codes=["SUMMER10"])
    assert types(app, card.card_id)[-1] == "RedemptionRefused"
    assert app.show(card.card_id).status == "active"


def test_r13_a_gift_card_cannot_pay_for_a_gift_card(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    with refused("gift_card_purchase_not_allowed"):
        pay(app, card.code, "order-17", 3000, contains_gift_card=True)
    assert app.show(card.card_id).balance == 5000


def test_r14_refund_of_card_paid_goods_is_a_new_card_never_cash(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    card = buy(app, amount=10000)
    pay(app, card.code, "order-18", 3000)
    back = app.refund(RefundOrder(
        order_id="order-18", returned_amount=3000, received_on=date(2026, 1, 12),
    ))
    assert back.to_other_method == 0
    assert back.new_card.amount == 3000
    # The 70.00 forfeited on first use is never paid out, in cash or otherwise.
    with refused("refund_exceeds_paid"):
        app.refund(RefundOrder(
            order_id="order-18", returned_amount=1, received_on=date(2026, 1, 12),
        ))


def test_r14_a_used_card_has_no_cash_value_left(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    pay(app, card.code, "order-19", 1000)
    with refused("card_already_used"):
        app.cancel(CancelCard(card_id=card.card_id, code=card.code))


def test_r15_lost_card_is_not_replaced_or_refunded_after_14_days(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    card = buy(app, order_id="order-20")
    clock.advance(days=20)
    with refused("cancellation_period_over"):
        app.cancel(CancelCard(card_id=card.card_id, code=card.code, order_id="order-20"))
    # Buying again under the same order never hands out a fresh code for the lost one.
    again = buy(app, order_id="order-20")
    assert again.card_id == card.card_id and again.code is None
    assert not [name for name in dir(app) if "reissue" in name or "replace" in name]
    # The code stays a bearer secret: whoever holds it can still use it.
    assert pay(app, card.code, "order-21", 1000).applied == 1000
