"""Stored replies: the result of each checkout message, kept with its effect for republishing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.streams import stream_id


class CheckoutReply(Aggregate):
    """The result published for a message id; its presence means the message was applied."""

    @event("Recorded")
    def __init__(self, *, result: dict[str, Any]) -> None:
        self.result = result

    @staticmethod
    def id_for(message_id: str) -> UUID:
        return stream_id("checkout-reply", message_id)

    @classmethod
    def record(cls, message_id: str, result: dict[str, Any]) -> CheckoutReply:
        # The @event decorator creates the Recorded class at runtime, unseen by mypy.
        return cls._create(
            cls.Recorded,  # type: ignore[attr-defined]
            id=cls.id_for(message_id),
            result=result,
        )
