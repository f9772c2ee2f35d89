"""The checkout processor: a partition's batch of messages applied in one store transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, Protocol, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking

from application.cards import GiftCards
from application.checkout import Checkout, Result
from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from application.privacy_erasure import dead_letter_sealer
from application.unit_of_work import UnitOfWork
from domain.errors import DomainError
from infra.transient import is_transient, never, retry_transient
from infra.wire.dead_letters import Invalid, Sealing, dead_letter
from infra.wire.messages import (
    CheckoutCompleted,
    CheckoutMessage,
    GiftCardCancellationRequested,
    GiftCardOrdered,
    OrderItemsReturned,
    parse,
    rejected,
)
from infra.wire.replies import CheckoutReply

log = logging.getLogger("giftcards.checkout")
Json = dict[str, Any]
CONFLICT_RETRIES = 5
# Redemptions from the order service without a customer id count their unknown codes here.
CHECKOUT_SOURCE = "checkout"


class Record(Protocol):
    """What the processor needs of a Kafka ConsumerRecord."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass
class Outcome:
    """What one batch produced: replies and dead letters to publish (codes go through the
    delivery outbox, stored with the cards: consumers/delivery.py)."""

    results: list[tuple[str | None, Json]] = field(default_factory=list)
    dead: list[tuple[str | None, Json]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for _, result in self.results if result["status"] == status)


def tracking_name(topic: str, partition: int) -> str:
    return f"{topic}#{partition}"


class CheckoutProcessor:
    """Applies a batch of one partition in ONE store transaction with its tracking record."""

    def __init__(self, app: GiftCards, topic: str) -> None:
        self.app = app
        self.checkout = Checkout(app)
        self.topic = topic

    def next_offset(self, partition: int) -> int | None:
        """The first offset not yet applied (the tracking record holds `last offset + 1`)."""
        recorder = cast(ProcessRecorder, self.app.recorder)  # see GiftCards.construct_recorder
        return recorder.max_tracking_id(tracking_name(self.topic, partition))

    @cached_property
    def sealing(self) -> Sealing:
        """Dead letters (version 2): the original sealed, the ids as stream pseudonyms."""
        pseudonyms = self.app.pseudonyms
        return Sealing(dead_letter_sealer(self.app.vault, self.app.now),
                       pseudonyms.order, pseudonyms.message)

    def process(
        self, partition: int, records: Sequence[Record], stop: Callable[[], bool] = never
    ) -> Outcome:
        """The batch applied (or found applied) with its tracking record. While the database
        is unavailable the whole batch waits and is tried again, from the tracked offset: a
        fault outside the messages never dead-letters them nor moves the offset past them.
        Raises Stopped if `stop()` while waiting."""
        return retry_transient(
            lambda: self._process(partition, records),
            what=f"checkout partition {partition}",
            stop=stop,
        )

    def _process(self, partition: int, records: Sequence[Record]) -> Outcome:
        for _ in range(CONFLICT_RETRIES):
            done = self.next_offset(partition) or 0
            outcome = Outcome()
            for record in records:
                if record.offset < done:
                    self._replay(partition, record, outcome)
            todo = [r for r in records if r.offset >= done]
            try:
                if todo:
                    self._apply_isolating_failures(partition, todo, outcome)
                return outcome
            except IntegrityError:
                # Another writer took a stream or this position first: redo on fresh state,
                # where the stored replies and tracking record show what it did.
                continue
        raise RuntimeError(f"partition {partition}: conflicts persisted after retries")

    def _apply_isolating_failures(
        self, partition: int, records: Sequence[Record], outcome: Outcome
    ) -> None:
        try:
            self._apply(partition, records, outcome)
        except IntegrityError:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise  # the database, not a message: the whole batch waits (see process)
            # A bug must not stall the partition: find the culprit message by message.
            log.exception("batch failed unexpectedly; retrying message by message")
            for record in records:
                self._apply_alone(partition, record, outcome)

    def _apply_alone(self, partition: int, record: Record, outcome: Outcome) -> None:
        try:
            self._apply(partition, [record], outcome)
        except IntegrityError:
            raise
        except Exception as exc:
            if is_transient(exc):
                # Messages applied alone before it are tracked; the retry resumes after them.
                raise
            log.exception("message at offset %d failed; dead-lettered", record.offset)
            failed = Invalid("internal_error", "processing failed")
            tracking = Tracking(tracking_name(self.topic, partition), record.offset + 1)
            with self.app.batch(tracking) as uow:
                # The order service never waits for nothing: a stored `rejected` reply (the
                # same one on replay), with a reason that says the message may be sent again.
                if (refusal := _refusal(record, failed)) is not None:
                    self._reply(uow, refusal["message_id"], partial(dict, refusal), outcome)
            self._dead(partition, record, failed, outcome)

    def _apply(self, partition: int, records: Sequence[Record], outcome: Outcome) -> None:
        staged = Outcome()
        tracking = Tracking(tracking_name(self.topic, partition), records[-1].offset + 1)
        parsed = [(record, self._parse(record)) for record in records]
        messages = [item for _, item in parsed if not isinstance(item, Invalid)]
        with self.app.store_ids_for_batch(_customers(messages)), \
                self.app.batch(tracking) as uow:
            # Two queries load every key and card the batch will read, instead of several each.
            uow.prefetch(key for message in messages for key in self.natural_keys(message))
            uow.prefetch_targets()
            # And one query for the vault keys of every data subject the batch seals for.
            uow.keys.prefetch(subject for message in messages for subject in self.subjects(message))
            # In offset order: of two inputs with one message id, the first one's reply stands.
            for record, item in parsed:
                if isinstance(item, Invalid):
                    self._dead(partition, record, item, staged)
                    if (refusal := _refusal(record, item)) is not None:
                        self._reply(uow, refusal["message_id"], partial(dict, refusal), staged)
                else:
                    self._reply(
                        uow, item.message_id, partial(self._execute, uow, item, staged), staged
                    )
        outcome.results += staged.results
        outcome.dead += staged.dead

    def _parse(self, record: Record) -> CheckoutMessage | Invalid:
        try:
            return parse(record.value, self.app.markets)
        except Invalid as invalid:
            return invalid

    def _reply(
        self, uow: UnitOfWork, message_id: str, result: Callable[[], Json], outcome: Outcome
    ) -> None:
        """The stored reply of a message id, or a new one stored with its effect (R3: once)."""
        stored = uow.get(CheckoutReply.id_for(message_id), CheckoutReply)
        if stored is None:
            stored = CheckoutReply.record(message_id, result())
            uow.add(stored)
        outcome.results.append((stored.result["order_id"], stored.result))

    def _replay(self, partition: int, record: Record, outcome: Outcome) -> None:
        """An offset already applied (crash before publishing): republish what was stored."""
        item = self._parse(record)
        if isinstance(item, Invalid):
            self._dead(partition, record, item, outcome)
            refusal = _refusal(record, item)
            message_id = refusal["message_id"] if refusal else None
        else:
            message_id = item.message_id
        if message_id is None:
            return
        stored = UnitOfWork(self.app).get(CheckoutReply.id_for(message_id), CheckoutReply)
        failed = stored is None or stored.result.get("reason") == "internal_error"
        if failed and not isinstance(item, Invalid):
            # Its dead letter too (stores written before internal errors got a reply have none).
            self._dead(partition, record, Invalid("internal_error", "processing failed"), outcome)
        if stored is not None:
            outcome.results.append((stored.result["order_id"], stored.result))

    def _dead(self, partition: int, record: Record, invalid: Invalid, outcome: Outcome) -> None:
        outcome.dead.append(
            dead_letter(
                invalid,
                topic=self.topic,
                partition=partition,
                offset=record.offset,
                raw=record.value,
                sealing=self.sealing,
            )
        )

    def _execute(self, uow: UnitOfWork, message: CheckoutMessage, outcome: Outcome) -> Json:
        base: Json = {
            "message_id": message.message_id,
            "type": message.type,
            "order_id": message.order_id,
        }
        try:
            effect = self._command(uow, message, outcome)
            return {**base, "status": "accepted", "reason": None, **effect}
        except DomainError as refusal:
            return {**base, "status": "rejected", "reason": refusal.code, "card_id": None}

    def _command(self, uow: UnitOfWork, message: CheckoutMessage, outcome: Outcome) -> Json:
        return self._call(uow, message).reply()

    def _call(self, uow: UnitOfWork, message: CheckoutMessage) -> Result:
        checkout = self.checkout
        if isinstance(message, GiftCardOrdered):
            buyer, recipient = message.buyer, message.recipient
            return checkout.order(uow, PurchaseCard(
                market=message.market,
                amount=message.amount,
                payment_method=message.payment_method,
                buyer_id=buyer.customer_id,
                buyer_email=buyer.email,
                buyer_name=buyer.name,
                recipient_email=recipient.email if recipient else None,
                recipient_name=recipient.name if recipient else None,
                message=message.message,
                order_id=message.order_id,
            ))
        if isinstance(message, CheckoutCompleted):
            return checkout.pay(uow, RedeemCard(
                code=message.gift_card_code,
                market=message.market,
                order_id=message.order_id,
                order_total=message.order_total,
                customer_id=message.customer_id,
                source=CHECKOUT_SOURCE,
                promo_codes=tuple(message.promo_codes),
                contains_gift_card=message.contains_gift_cards,
            ))
        if isinstance(message, OrderItemsReturned):
            customer = message.customer
            return checkout.return_items(uow, RefundOrder(
                order_id=message.order_id,
                returned_amount=message.returned_amount,
                received_on=message.received_on,
                request_id=message.message_id,
                customer_id=customer.customer_id if customer else None,
                customer_email=customer.email if customer else None,
                customer_name=customer.name if customer else None,
            ))
        return self._cancel(uow, message)

    def _cancel(self, uow: UnitOfWork, message: GiftCardCancellationRequested) -> Result:
        return self.checkout.cancel(uow, CancelCard(
            card_id=message.card_id, order_id=message.order_id, code=message.code
        ))

    def subjects(self, message: CheckoutMessage) -> list[str]:
        """The vault subjects a message's command seals personal data for."""
        if not isinstance(message, GiftCardOrdered):
            return []
        recipient = message.recipient.email if message.recipient else None
        return self.app.purchase_subjects(message.buyer.customer_id, recipient)

    def natural_keys(self, message: CheckoutMessage) -> list[UUID]:
        """Streams a message's command will read: its reply, then what the use case declares."""
        keys = [CheckoutReply.id_for(message.message_id)]
        if isinstance(message, GiftCardOrdered):
            keys += self.checkout.order_keys(message.order_id)
        elif isinstance(message, CheckoutCompleted):
            keys += self.checkout.pay_keys(
                message.order_id, message.customer_id, CHECKOUT_SOURCE, message.gift_card_code
            )
        elif isinstance(message, OrderItemsReturned):
            keys += self.checkout.return_keys(message.order_id, message.message_id)
        return keys


def _customers(messages: Sequence[CheckoutMessage]) -> list[str | None]:
    """The customer ids a batch's commands translate to store ids."""
    found: list[str | None] = []
    for message in messages:
        if isinstance(message, GiftCardOrdered):
            found.append(message.buyer.customer_id)
        elif isinstance(message, CheckoutCompleted):
            found.append(message.customer_id)
        elif isinstance(message, OrderItemsReturned) and message.customer is not None:
            found.append(message.customer.customer_id)
    return found


def _refusal(record: Record, invalid: Invalid) -> Json | None:
    """The rejected reply of a refused input that shows a message id; a bug here costs no more."""
    try:
        return rejected(record.value, invalid)
    except Exception as error:
        log.error("offset %d: no reply built (%s)", record.offset, type(error).__name__)
        return None
