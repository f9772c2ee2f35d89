"""Stored replies: the result of each checkout message, kept with its effect for republishing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.streams import stream_id


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
