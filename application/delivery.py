"""Code deliveries for customer service: the failed ones (the alert) and their retry (R7)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.cards import GiftCards, Json, UnitOfWork, iso
from domain.addresses import check_address
from domain.delivery import CodeDelivery
from domain.errors import refuse

OUTCOMES = [
    get_topic(CodeDelivery.CodeDelivered),
    get_topic(CodeDelivery.CodeDeliveryFailed),
    get_topic(CodeDelivery.DeliveryRetried),
]
PAGE = 1000


class Deliveries:
    """What became of the sealed codes; failures wait for customer service."""

    def __init__(self, cards: GiftCards) -> None:
        self.cards = cards

    def failed(self) -> Json:
        """Every delivery whose last outcome is a permanent failure, oldest first."""
        last: dict[UUID, Any] = {}
        start = 1
        recorder, mapper = self.cards.recorder, self.cards.mapper
        while page := recorder.select_notifications(start, PAGE, topics=OUTCOMES):
            for notification in page:
                event = mapper.to_domain_event(notification)
                last.pop(event.originator_id, None)  # keeps the dict in order of last outcome
                last[event.originator_id] = event
            start = page[-1].id + 1
        failed = [
            self._failure(stream, event)
            for stream, event in last.items()
            if isinstance(event, CodeDelivery.CodeDeliveryFailed)
        ]
        return {"failed": failed, "count": len(failed)}

    def _failure(self, stream: UUID, event: CodeDelivery.CodeDeliveryFailed) -> Json:
        delivery: CodeDelivery = self.cards.repository.get(stream)
        return {
            "card_id": str(delivery.card_id),
            "kind": delivery.kind,
            "reason": event.reason,
            "detail": event.detail,
            "failed_at": iso(event.at),
        }

    def retry(self, card_id: UUID, *, operator: str, buyer_email: str | None) -> Json:
        """Sends the same code again (the worker picks the retry up in order)."""
        check_address(buyer_email, "buyer_email")

        def command(uow: UnitOfWork) -> Json:
            delivery = uow.get(CodeDelivery.id_for(card_id), CodeDelivery)
            if delivery is None:
                raise refuse("unknown_delivery", f"no code delivery for card {card_id}")
            sealed = None
            if buyer_email is not None:
                if delivery.buyer_subject is None:
                    raise refuse("invalid_input", "this card has no buyer to write to")
                sealed = self.cards.seal_pii(delivery.buyer_subject, "buyer_email", buyer_email)
            delivery.record_retry(operator=operator, buyer_email=sealed, now=self.cards.now())
            uow.add(delivery)
            return {"card_id": str(card_id), "status": delivery.status, "attempt": delivery.attempt}

        return self.cards._run(command)
