"""Code deliveries for customer service: the failed ones (the alert) and their retry (R7)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.card_base import notice_key_subject
from application.privacy import Privacy
from application.privacy_reads import PiiReader, check_operator
from application.privacy_scan import Service
from application.results import DeliveryRetry, DeliveryState, FailedDelivery
from application.unit_of_work import UnitOfWork
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

    def __init__(self, service: Service) -> None:
        self.service, self.cards = service, service.app

    def failed(self) -> list[FailedDelivery]:
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
        return [
            self._failure(stream, event)
            for stream, event in last.items()
            if isinstance(event, CodeDelivery.CodeDeliveryFailed)
        ]

    def _failure(
        self, stream: UUID, event: CodeDelivery.CodeDeliveryFailed
    ) -> FailedDelivery:
        delivery: CodeDelivery = self.cards.repository.get(stream)
        return FailedDelivery(card_id=delivery.card_id, kind=delivery.kind, reason=event.reason,
                              detail=event.detail, failed_at=event.at)

    def retry(
        self, card_id: UUID, *, operator: str, buyer_email: str | None = None,
        request_id: str | None = None,
    ) -> DeliveryRetry:
        """Sends the same code again (the worker picks the retry up in order), only to the
        address on file or its recorded rectification. Another address is a rectification of
        the buyer's e-mail: a registered operator under the buyer's rectification request,
        access-logged, and the previous address is told (without the code). A card without any
        address (a refund whose request named none) gets its first one from a registered
        operator."""
        check_address(buyer_email, "buyer_email")
        privacy = Privacy(self.service)
        check_operator(self.service, operator)  # the one check of who may act (R21)
        reader = PiiReader(self.service, operator, "code delivery retry (R7)",
                           "deliveries retry")
        delivery = self._retriable(card_id, operator)
        buyer = delivery.buyer_subject
        notice_to: str | None = None
        first_address = False
        if buyer_email is not None:
            if buyer is None:
                raise refuse("invalid_input", "this card has no owner to write to")
            on_file = reader.open(buyer, delivery.pii.get("buyer_email"), "buyer_email")
            if on_file is None:
                first_address = True
            elif on_file.strip().lower() != buyer_email.strip().lower():
                if request_id is None:
                    raise refuse(
                        "rectification_required",
                        "the code goes only to the address on file: another address is a "
                        "rectification of the buyer's e-mail (give --request-id of their "
                        "registered rectification request)",
                    )
                # Sealed before the rectification shreds the old value: told, then forgotten.
                notice_to = self.cards.vault.seal(
                    notice_key_subject(card_id, delivery.attempt + 1), on_file
                )
                privacy.rectify(buyer, "email", buyer_email, request_id, operator)
        elif buyer is not None:
            reader.note(buyer, "buyer_email")  # the code goes to them again: an act on them
        reader.flush()

        def command(uow: UnitOfWork) -> DeliveryRetry:
            again = self._retriable(card_id, operator, uow)
            # A first address is sealed in the retry's own unit of work (with its key).
            first = (self.cards.seal_pii(uow, buyer, "buyer_email", buyer_email)
                     if first_address and buyer is not None and buyer_email is not None else None)
            again.record_retry(operator=operator, buyer_email=first,
                               now=self.cards.now(), notice_to=notice_to)
            uow.add(again)
            return DeliveryRetry(card_id=card_id, status=again.status, attempt=again.attempt,
                                 previous_address_notified=notice_to is not None)

        return self.cards.run(command)

    def of_card(self, card_id: UUID) -> DeliveryState:
        """A card's code delivery for customer service (no address: that is personal data)."""
        delivery = UnitOfWork(self.cards).get(CodeDelivery.id_for(card_id), CodeDelivery)
        if delivery is None:
            return DeliveryState(card_id=card_id, status=None, failure=None, attempt=0)
        return DeliveryState(card_id=card_id, status=delivery.status, failure=delivery.failure,
                             attempt=delivery.attempt)

    def _retriable(
        self, card_id: UUID, operator: str, uow: UnitOfWork | None = None
    ) -> CodeDelivery:
        delivery = (uow or UnitOfWork(self.cards)).get(CodeDelivery.id_for(card_id), CodeDelivery)
        if delivery is None:
            raise refuse("unknown_delivery", f"no code delivery for card {card_id}")
        delivery.check_retriable(operator)
        return delivery
