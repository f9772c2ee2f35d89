"""Stored replies: the result of each checkout message, kept with its effect for republishing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.stored_names import stored_as
from domain.streams import stream_id

_TEXT_OR_NULL = {"type": ["string", "null"]}
# The reply contract (README): the common fields; an accepted reply adds its effect's.
RESULT_SCHEMA: dict[str, Any] = {
    "title": "CheckoutResult",
    "type": "object",
    "properties": {
        "message_id": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"},
        "type": {"enum": ["GiftCardOrdered", "CheckoutCompleted", "OrderItemsReturned",
                          "GiftCardCancellationRequested", None]},
        "order_id": _TEXT_OR_NULL,
        "status": {"enum": ["accepted", "rejected"]},
        "reason": {"type": ["string", "null"], "pattern": "^[a-z0-9_]+$"},
        "card_id": {"type": ["string", "null"], "format": "uuid"},
    },
    "required": ["message_id", "type", "order_id", "status", "reason", "card_id"],
    "if": {"properties": {"status": {"const": "rejected"}}},
    "then": {"properties": {"reason": {"type": "string"}}},
    "else": {"properties": {"reason": {"type": "null"}}},
}


@stored_as("consumers.replies:CheckoutReply")
class CheckoutReply(Aggregate):
    """The result published for a message id; its presence means the message was applied."""

    class Recorded(Aggregate.Created):  # stored topic `consumers.replies:CheckoutReply.Recorded`
        result: dict[str, Any]

    @event(Recorded)
    def __init__(self, *, result: dict[str, Any]) -> None:
        self.result = result

    @staticmethod
    def id_for(message_id: str) -> UUID:
        return stream_id("checkout-reply", message_id)

    @classmethod
    def record(cls, message_id: str, result: dict[str, Any]) -> CheckoutReply:
        return cls._create(cls.Recorded, id=cls.id_for(message_id), result=result)
