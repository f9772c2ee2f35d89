"""R17: `OrderItemsReturned` names the customer of the returned order (their id and e-mail);
older messages without it stay valid; the customer id is published, so never an e-mail."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from domain.markets import Markets
from infra.wire.dead_letters import Invalid
from infra.wire.messages import OrderItemsReturned, parse

MARKETS = Markets.load()


def returned(**more: Any) -> bytes:
    return orjson.dumps({"message_id": "m-1", "type": "OrderItemsReturned",
                         "occurred_at": "2026-01-12T09:00:00Z", "order_id": "O-1",
                         "market": "FR", "returned_amount": 1500, "received_on": "2026-01-12",
                         **more})  # fmt: skip


def test_r17_a_return_names_the_customer_and_her_email() -> None:
    message = parse(returned(customer={"customer_id": "cust-a", "email": "a@example.org"}),
                    MARKETS)
    assert isinstance(message, OrderItemsReturned) and message.customer is not None
    assert (message.customer.customer_id, message.customer.email) == ("cust-a", "a@example.org")


def test_r17_a_return_written_before_the_customer_field_is_still_read() -> None:
    message = parse(returned(), MARKETS)
    assert isinstance(message, OrderItemsReturned) and message.customer is None


def test_p5_an_email_as_the_returning_customers_id_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        parse(returned(customer={"customer_id": "a@example.org"}), MARKETS)
    assert refused.value.reason == "invalid_id"  # the one id rule of every path
