"""Rules R1-R5 and R7 (buying a card), given events / when command / then events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from application.card_base import SEALED_FOR_BOTH, iso
from application.commands import RedeemCard
from domain.markets import Markets
from entrypoints.results import card_json
from infra.bootstrap import Service, build
from infra.config import load_settings
from tests.conftest import SECRET, FixedClock
from tests.store_ids import store_id
from tests.unit.rules_helpers import buy, event_count, events, refused, stored_bytes, types


@pytest.fixture
def sqlite_service(tmp_path: Path, clock: FixedClock) -> Iterator[Service]:
    """A file-backed store, to look at the bytes actually written."""
    env = {"GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'gc.sqlite3'}",
           "GIFTCARDS_SECRET_KEY": SECRET}
    svc = build(load_settings(env), clock=clock)
    yield svc
    svc.close()


@pytest.mark.parametrize(
    ("market", "major"), [("FR", "20"), ("FR", "500"), ("GB", "20.00"), ("US", "500.00")]
)
def test_r1_bounds_20_and_500_are_included(
    memory_service: Service, market: str, major: str
) -> None:
    app = memory_service.app
    amount = app.markets.get(market).to_minor(major)
    card = buy(app, market=market, amount=amount)
    assert card.card.amount == card.card.balance == amount
    assert isinstance(card.card.amount, int)
    assert card.card.currency == {"FR": "EUR", "GB": "GBP", "US": "USD"}[market]
    purchased = events(app, str(card.card_id))[0]
    assert purchased.amount == amount and purchased.currency == card.card.currency


@pytest.mark.parametrize(
    ("market", "major"), [("FR", "19.99"), ("FR", "500.01"), ("GB", "19.99"), ("US", "500.01")]
)
def test_r1_one_cent_outside_the_bounds_is_refused(
    memory_service: Service, market: str, major: str
) -> None:
    app = memory_service.app
    before = event_count(memory_service)
    with refused("amount_out_of_range") as caught:
        buy(app, market=market, amount=app.markets.get(market).to_minor(major))
    assert app.markets.get(market).currency in caught.value.message
    assert event_count(memory_service) == before


def test_r1_amounts_are_integer_minor_units(memory_service: Service) -> None:
    market = memory_service.app.markets.get("FR")
    assert market.to_minor("20") == 2000
    assert market.to_minor("123.45") == 12345
    with refused("invalid_amount"):
        market.to_minor("20.001")


@pytest.mark.parametrize("method", ["bnpl", "promo", "gift_card", "paypal", "CARD", ""])
def test_r2_only_a_bank_card_pays_for_a_gift_card(memory_service: Service, method: str) -> None:
    with refused("payment_method_not_allowed"):
        buy(memory_service.app, payment_method=method)
    assert event_count(memory_service) == 0


def test_r2_bank_card_is_accepted(memory_service: Service) -> None:
    card = buy(memory_service.app, payment_method="card")
    assert events(memory_service.app, str(card.card_id))[0].payment_method == "card"


def test_r3_repeated_order_id_returns_the_same_card(memory_service: Service) -> None:
    app = memory_service.app
    first = buy(app, order_id="order-42")
    count = event_count(memory_service)
    again = buy(app, order_id="order-42")
    assert str(again.card_id) == str(first.card_id)
    assert again.replayed is True and again.code is None
    assert event_count(memory_service) == count


def test_r3_same_order_id_with_a_different_amount_is_a_conflict(memory_service: Service) -> None:
    app = memory_service.app
    buy(app, order_id="order-43", amount=5000)
    count = event_count(memory_service)
    with refused("order_id_conflict"):
        buy(app, order_id="order-43", amount=6000)
    with refused("order_id_conflict"):
        buy(app, order_id="order-43", amount=5000, market="DE")
    assert event_count(memory_service) == count


def test_r4_activated_right_after_purchased_and_usable_at_once(memory_service: Service) -> None:
    app = memory_service.app
    card = buy(app)
    assert types(app, str(card.card_id)) == ["Purchased", "Activated"]
    purchased, activated = events(app, str(card.card_id))
    assert activated.at == purchased.at
    used = app.redeem(RedeemCard(
        code=card.code, market="FR", order_id="o-1", order_total=1000, source="test",
    ))
    assert used.applied == 1000 and used.status == "redeemed"


def test_r5_message_and_emails_are_stored_only_sealed(sqlite_service: Service) -> None:
    app = sqlite_service.app
    message = "Joyeux anniversaire Zoé, bisous de Marcel"
    card = buy(
        app,
        message=message,
        buyer_email="marcel.dupont@example.com",
        buyer_name="Marcel Dupont",
        recipient_email="zoe.martin@example.org",
        recipient_name="Zoé Martin",
    )
    raw = stored_bytes(app)
    for clear in (message, "marcel.dupont", "zoe.martin", "Marcel Dupont", "Martin"):
        assert clear.encode() not in raw
        assert clear.encode("utf-16-le") not in raw
    pii = events(app, str(card.card_id))[0].pii
    assert set(pii) >= {"message", "buyer_email", "recipient_email", "recipient_subject"}
    # A message to a recipient is sealed under the buyer's key around the recipient's seal
    # (P2): either one's key alone does not open it.
    vault = sqlite_service.vault
    outer = vault.open(store_id(sqlite_service, "cust-1"), pii["message"])  # the buyer's key
    assert outer is not None and message not in outer and outer.startswith(SEALED_FOR_BOTH)
    assert vault.open(pii["recipient_subject"], outer.removeprefix(SEALED_FOR_BOTH)) == message
    history = str(app.history(card.card_id))
    assert message not in history and "pii" not in history


def test_r5_message_is_optional(memory_service: Service) -> None:
    card = buy(memory_service.app, message=None)
    assert events(memory_service.app, str(card.card_id))[0].pii == {}


def test_r5_personal_data_without_a_buyer_id_is_refused(memory_service: Service) -> None:
    with refused("invalid_input"):
        buy(memory_service.app, buyer_id=None, message="hello")
    assert event_count(memory_service) == 0


def test_r7_confirmation_carries_amount_purchase_date_and_the_code_once(
    memory_service: Service, clock: FixedClock
) -> None:
    app = memory_service.app
    card = buy(app, order_id="order-7")
    assert card.card.amount == 5000
    assert iso(card.card.purchased_at) == "2026-01-12T10:00:00Z"
    assert iso(card.card.expires_at) == "2026-07-12T10:00:00Z"
    assert len(card.code) >= 16
    assert "code" not in card_json(app.show(card.card_id))


def test_r6_a_card_is_bound_to_its_purchase_market(memory_service: Service) -> None:
    card = buy(memory_service.app, market="GB", amount=2000)
    assert card.card.market == "GB" and card.card.currency == "GBP"
    assert events(memory_service.app, str(card.card_id))[0].terms_version == "GB-2025-11-19"


def test_r1_unknown_market_is_refused(memory_service: Service) -> None:
    with refused("unknown_market"):
        buy(memory_service.app, market="XX")
    assert Markets.load().get("FR").currency == "EUR"
