"""Ids are ids (P5): every id field, on every path (application, Kafka input, CLI), refuses
control characters, NUL, over-long values, spaces and e-mail addresses with one code,
`invalid_id`, by one validator (domain.ids); nothing is written for a refused id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from application.commands import AuthorizeHold, CancelCard, CaptureHold, LookUpCard, RedeemCard
from application.holds import Holds
from domain.errors import DomainError
from domain.ids import MAX_ID, check_id, is_id
from infra.bootstrap import Service
from infra.wire.dead_letters import Invalid
from infra.wire.messages import parse, rejected
from tests.e2e.test_cli import BUY, T0, assert_error, cli
from tests.unit.rules_helpers import buy

BAD = {
    "nul": "order\x00x",
    "control": "order\x01x",
    "newline": "order\n",
    "space": "m-dl2 0612345678",
    "e-mail": "zed.secret@example.org",
    "too long": "o" * (MAX_ID + 1),
    "empty": "",
    "non-ascii": "zoë",
}


def test_p5_one_alphabet_and_length_for_ids() -> None:
    assert is_id("O-9100-R2") and is_id("o" * MAX_ID) and is_id("c:42/b#1")
    for value in BAD.values():
        assert not is_id(value)
        with pytest.raises(DomainError) as refused:
            check_id("order_id", value)
        assert refused.value.code == "invalid_id"
        assert value not in refused.value.message or not value


def refusal_code(call: Callable[[], Any]) -> str:
    with pytest.raises(DomainError) as refused:
        call()
    return refused.value.code


@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_p5_every_id_field_of_every_use_case_refuses_a_non_id(service: Service, bad: str) -> None:
    app, value = service.app, BAD[bad]
    holds = Holds(app)
    card = buy(app)
    before = app.recorder.max_notification_id()
    calls: dict[str, Callable[[], Any]] = {
        "purchase order_id": lambda: buy(app, order_id=value),
        "purchase buyer_id": lambda: buy(app, buyer_id=value),
        "redeem order_id": lambda: app.redeem(RedeemCard(
            code=card.code, market="FR", order_id=value, order_total=100, customer_id="c",
            source="t",
        )),
        "redeem customer_id": lambda: app.redeem(RedeemCard(
            code=card.code, market="FR", order_id="o", order_total=100, customer_id=value,
            source="t",
        )),
        "lookup customer_id": lambda: holds.lookup(LookUpCard(
            code=card.code, market="FR", customer_id=value, source="t",
        )),
        "authorize order_id": lambda: holds.authorize(AuthorizeHold(
            code=card.code, market="FR", order_id=value, order_total=100, customer_id="c",
            source="t",
        )),
        "authorize customer_id": lambda: holds.authorize(AuthorizeHold(
            code=card.code, market="FR", order_id="o", order_total=100, customer_id=value,
            source="t",
        ), simulate=True),
        "cancel order_id": lambda: app.cancel(CancelCard(card_id=None, order_id=value)),
        "capture order_id": lambda: holds.capture(CaptureHold(order_id=value)),
    }
    assert {name: refusal_code(call) for name, call in calls.items()} == {
        name: "invalid_id" for name in calls}
    assert app.recorder.max_notification_id() == before  # nothing written
    assert app.show(card.card_id).status == "active"


def purchase_message(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "GiftCardOrdered", "message_id": "m-1", "occurred_at": "2026-01-12T10:00:00Z",
        "order_id": "o-1", "market": "FR", "amount": 5000, "currency": "EUR",
        "payment_method": "card", "buyer": {"customer_id": "c-1"},
    }
    message.update(changes)
    return message


def completed_message(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "CheckoutCompleted", "message_id": "m-2", "occurred_at": "2026-01-12T10:00:00Z",
        "order_id": "o-2", "market": "FR", "customer_id": "c-2", "order_total": 100,
        "currency": "EUR", "gift_card_code": "ABCDEF-GHJKMN-PQRSTU",
    }
    message.update(changes)
    return message


@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_p5_kafka_dead_letters_a_non_id_with_a_reply_when_the_message_id_is_one(
    service: Service, bad: str
) -> None:
    value = BAD[bad]
    cases = {
        "message_id": purchase_message(message_id=value),
        "order_id": purchase_message(order_id=value),
        "buyer.customer_id": purchase_message(buyer={"customer_id": value}),
        "customer_id": completed_message(customer_id=value),
    }
    for field, message in cases.items():
        raw = orjson.dumps(message)
        with pytest.raises(Invalid) as refused:
            parse(raw, service.app.markets)
        assert refused.value.reason == "invalid_id", field
        reply = rejected(raw, refused.value)
        if field == "message_id":
            assert reply is None  # no id to answer to: the dead letter alone
        else:
            assert reply is not None and reply["reason"] == "invalid_id"
            assert reply["order_id"] in (None, message["order_id"])
            assert value not in orjson.dumps(reply).decode() or not value


def test_p5_cli_refuses_a_non_id_with_exit_2(env_for: dict[str, str]) -> None:
    for value in ("zed.secret@example.org", "order\x01x", "o" * (MAX_ID + 1), "two words"):
        assert_error(cli(env_for, T0, *BUY, "--amount", "50", "--order-id", value), 2,
                     "invalid_id")
        buyer = [*BUY[:-1], value, "--amount", "50", "--order-id", "cli-ok"]
        assert_error(cli(env_for, T0, *buyer), 2, "invalid_id")
    rc, card, _ = cli(env_for, T0, *BUY, "--amount", "50", "--order-id", "cli-ok")
    assert rc == 0
    rc, _, _ = cli(env_for, T0, "show", card["card_id"])
    assert rc == 0
