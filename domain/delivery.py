"""A card's code on its way to the buyer (R7): a private outbox stream, never published."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.errors import refuse
from domain.stored_names import stored_as
from domain.streams import stream_id

Kind = Literal["purchase", "refund"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


@stored_as("domain.delivery:CodeDelivery")
class CodeDelivery(Aggregate):
    """One card's code, sealed under a key of its own until the buyer's e-mail is sent.

    Written in the same transaction as the card's `Purchased`; its events stay in the store
    (not in `infra.envelope.PUBLISHED`). Once delivered, the card's delivery key is destroyed:
    the sealed code left in the append-only log can no longer be opened by anyone."""

    # Nested names are the stored topics (`domain.delivery:CodeDelivery.CodeSealed`).

    class CodeSealed(Aggregate.Created):
        card_id: UUID
        kind: Kind
        sealed_code: str  # AES-GCM under the card's delivery key, never the code itself
        buyer_subject: str | None
        pii: dict[str, str]  # the buyer's address, names and message, sealed per subject
        refunds_order: str | None
        at: datetime

    class CodeDelivered(Aggregate.Event):
        message_id: str  # the SMTP Message-ID of the card e-mail
        at: datetime

    class CodeDeliveryFailed(Aggregate.Event):
        reason: str
        detail: str
        at: datetime

    class DeliveryRetried(Aggregate.Event):
        operator: str
        buyer_email: str | None  # a corrected address of the same buyer, sealed; None: same
        at: datetime

    @event(CodeSealed)
    def __init__(
        self,
        *,
        card_id: UUID,
        kind: Kind,
        sealed_code: str,
        buyer_subject: str | None,
        pii: dict[str, str],
        refunds_order: str | None,
        at: datetime,
    ) -> None:
        self.card_id = card_id
        self.kind = kind
        self.sealed_code = sealed_code
        self.buyer_subject = buyer_subject
        self.pii = pii
        self.refunds_order = refunds_order
        self.status: DeliveryStatus = "pending"
        self.message_id: str | None = None
        self.failure: str | None = None
        self.attempt = 0  # bumped by each operator retry: a new e-mail needs a new Message-ID

    @staticmethod
    def id_for(card_id: UUID) -> UUID:
        return stream_id("delivery", str(card_id))

    @classmethod
    def seal(
        cls,
        *,
        card_id: UUID,
        kind: Kind,
        sealed_code: str,
        buyer_subject: str | None,
        pii: dict[str, str],
        refunds_order: str | None,
        now: datetime,
    ) -> CodeDelivery:
        return cls._create(
            cls.CodeSealed,
            id=cls.id_for(card_id),
            card_id=card_id,
            kind=kind,
            sealed_code=sealed_code,
            buyer_subject=buyer_subject,
            pii=pii,
            refunds_order=refunds_order,
            at=now,
        )

    def check_pending(self) -> None:
        if self.status != "pending":
            raise refuse("delivery_not_pending", f"this code delivery is {self.status}")

    def record_delivered(self, *, message_id: str, now: datetime) -> None:
        self.check_pending()
        self._delivered(message_id=message_id, at=now)

    @event(CodeDelivered)
    def _delivered(self, *, message_id: str, at: datetime) -> None:
        self.status = "delivered"
        self.message_id = message_id

    def record_failed(self, *, reason: str, detail: str, now: datetime) -> None:
        """A permanent failure: customer service is alerted; the code is NOT reissued (R15)."""
        self.check_pending()
        self._failed(reason=reason, detail=detail, at=now)

    @event(CodeDeliveryFailed)
    def _failed(self, *, reason: str, detail: str, at: datetime) -> None:
        self.status = "failed"
        self.failure = reason

    def record_retry(self, *, operator: str, buyer_email: str | None, now: datetime) -> None:
        """Customer service sends the same code again after a failure, perhaps to a corrected
        address of the same buyer (sealed with the buyer's key). The code is not reissued (R15)."""
        if self.status != "failed":
            raise refuse("delivery_not_failed", "only a failed delivery can be retried")
        if self.failure == "buyer_erased":
            raise refuse("buyer_erased", "the buyer was erased: this code can no longer be sent")
        if not operator.strip():
            raise refuse("operator_required", "a retry names its operator (R21)")
        self._retried(operator=operator, buyer_email=buyer_email, at=now)

    @event(DeliveryRetried)
    def _retried(self, *, operator: str, buyer_email: str | None, at: datetime) -> None:
        self.status = "pending"
        self.failure = None
        self.attempt += 1
        if buyer_email is not None:
            self.pii = {**self.pii, "buyer_email": buyer_email}
