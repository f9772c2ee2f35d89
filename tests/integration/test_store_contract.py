"""The application's contract on every real store (SQLite and PostgreSQL): R3, R10, R11, R17."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date
from functools import partial
from typing import Any

import orjson
import pytest

from application.commands import CancelCard, PurchaseCard, RefundOrder
from application.results import Purchase, Redemption
from domain.errors import DomainError
from infra.bootstrap import Service, build
from infra.config import load_settings
from tests.conftest import FixedClock
from tests.unit.rules_helpers import buy, event_count, pay, refused, stored_bytes, types

ROUNDS = 4


@pytest.fixture
def second_service(env_for: dict[str, str], clock: FixedClock) -> Iterator[Service]:
    """Another writer on the same store, as a second process would be."""
    svc = build(load_settings(env_for), clock=clock)
    yield svc
    svc.close()


def race(*commands: Callable[[], Any]) -> list[Any]:
    """Run the commands at the same instant in threads; each result or the DomainError raised."""
    barrier = threading.Barrier(len(commands))
    results: list[Any] = [None] * len(commands)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = commands[i]()
        except DomainError as refusal:
            results[i] = refusal

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(commands))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_r4_r11_r17_full_lifecycle(service: Service, clock: FixedClock) -> None:
    app = service.app
    card = buy(app, amount=5000, order_id="buy-1", message="secret words", buyer_email="a@b.fr")
    used = pay(app, card.code, "shop-1", 8000)
    assert (used.applied, used.remaining_to_pay, used.forfeited) == (5000, 3000, 0)
    clock.advance(days=3)
    back = app.refund(RefundOrder(
        order_id="shop-1", returned_amount=6000, received_on=date(2026, 1, 13),
    ))
    assert (back.new_card.amount, back.to_other_method) == (5000, 1000)
    new_id = back.new_card.card_id
    assert app.show(new_id).replaces == card.card_id
    other = buy(app, order_id="buy-2")
    assert app.cancel(CancelCard(card_id=other.card_id, code=other.code)).status == "cancelled"
    clock.set("2026-09-01T00:00:00Z")
    assert app.expire().forfeited == {"EUR": 5000}
    assert types(app, new_id) == ["Purchased", "Activated", "Expired"]
    assert types(app, str(card.card_id)) == ["Purchased", "Activated", "Redeemed", "Refunded"]
    raw = stored_bytes(app)
    for secret in (card.code, back.new_card.code, "secret words", "a@b.fr"):
        assert secret.encode() not in raw


def test_r3_r10_r19_commands_are_idempotent(service: Service) -> None:
    app = service.app
    card = buy(app, order_id="buy-3")
    assert buy(app, order_id="buy-3").card_id == card.card_id
    with refused("order_id_conflict"):
        buy(app, order_id="buy-3", amount=9900)
    first = pay(app, card.code, "shop-3", 1000)
    count = event_count(service)
    assert pay(app, card.code, "shop-3", 1000) == first
    assert event_count(service) == count
    spare = buy(app, order_id="buy-4")
    done = app.cancel(CancelCard(card_id=spare.card_id, code=spare.code))
    count = event_count(service)
    assert app.cancel(CancelCard(card_id=spare.card_id, code=spare.code)) == done
    assert event_count(service) == count


def test_r3_concurrent_purchases_of_one_order_make_one_card(
    service: Service, second_service: Service
) -> None:
    for n in range(ROUNDS):
        order = f"race-buy-{n}"
        results = race(partial(buy, service.app, order_id=order),
                       partial(buy, second_service.app, order_id=order))
        bought = [r for r in results if isinstance(r, Purchase)]
        assert len(bought) == 2, results
        assert bought[0].card_id == bought[1].card_id
        assert sorted(r.replayed for r in bought) == [False, True]
    purchased = [n for n in service.app.recorder.select_notifications(1, 10**6)
                 if n.topic.endswith("GiftCard.Purchased")]
    assert len(purchased) == ROUNDS


def test_r11_concurrent_redemptions_of_one_code_exactly_one_wins(
    service: Service, second_service: Service
) -> None:
    for n in range(ROUNDS):
        card = buy(service.app, order_id=f"race-card-{n}")
        results = race(partial(pay, service.app, card.code, f"shop-a-{n}", 1000),
                       partial(pay, second_service.app, card.code, f"shop-b-{n}", 1000))
        won = [r for r in results if isinstance(r, Redemption)]
        lost = [r for r in results if isinstance(r, DomainError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].code == "already_redeemed"
        assert types(service.app, str(card.card_id)).count("Redeemed") == 1


def test_stored_state_round_trips_byte_for_byte_with_awkward_text(service: Service) -> None:
    """PostgreSQL gets the events in binary (infra.recorders): quotes, backslashes, braces
    and commas, which the text form must escape, come back unchanged."""
    from infra.recorders import BinaryPostgresProcessRecorder

    if service.settings.database_url.startswith("postgresql"):
        assert isinstance(service.app.recorder, BinaryPostgresProcessRecorder)
    # Ids are visible ASCII without spaces (domain.ids), awkward ones still.
    awkward = 'Zoe\'s"gift",{a,b}\\(x)\\N-NULL'
    card = service.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id=awkward, order_id=f"o-{awkward}",
    ))
    stored = service.app.recorder.select_events(card.card_id)
    # The order id is kept as given (the buyer is named by their store id, P2).
    assert orjson.loads(stored[0].state)["correlation_id"] == f"o-{awkward}"
    again = service.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id=awkward, order_id=f"o-{awkward}",
    ))
    assert str(again.card_id) == str(card.card_id) and again.replayed is True
