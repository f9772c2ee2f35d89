"""The checkout consumer: `order.checkout` -> commands stored with their offsets -> replies."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking
from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from application.cards import GiftCards, UnitOfWork
from application.checkout import Checkout, Result
from application.privacy import dead_letter_sealer
from consumers.dead_letters import Invalid, dead_letter
from consumers.messages import (
    CheckoutCompleted,
    CheckoutMessage,
    GiftCardCancellationRequested,
    GiftCardOrdered,
    OrderItemsReturned,
    parse,
    rejected,
)
from consumers.replies import CheckoutReply
from domain.errors import DomainError
from infra.kafka import clients
from infra.kafka.admin import METADATA_MAX_AGE_MS
from infra.kafka.clients import Link
from infra.kafka.cloudevents import DEFAULT, CloudEvents
from infra.kafka.topics import Topics
from infra.transient import Stopped, is_transient, never, retry_transient

MAX_TRANSACTION_MESSAGES = 500
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
        with self.app.batch(tracking) as uow:
            parsed = [(record, self._parse(record)) for record in records]
            messages = [item for _, item in parsed if not isinstance(item, Invalid)]
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
                seal=dead_letter_sealer(self.app.vault, self.app.now),
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
            return checkout.order(
                uow,
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
            )
        if isinstance(message, CheckoutCompleted):
            return checkout.pay(
                uow,
                code=message.gift_card_code,
                market=message.market,
                order_id=message.order_id,
                order_total=message.order_total,
                customer_id=message.customer_id,
                source=CHECKOUT_SOURCE,
                promo_codes=list(message.promo_codes),
                contains_gift_card=message.contains_gift_cards,
            )
        if isinstance(message, OrderItemsReturned):
            customer = message.customer
            return checkout.return_items(
                uow,
                order_id=message.order_id,
                returned_amount=message.returned_amount,
                received_on=message.received_on,
                request_id=message.message_id,
                customer_id=customer.customer_id if customer else None,
                customer_email=customer.email if customer else None,
                customer_name=customer.name if customer else None,
            )
        return self._cancel(uow, message)

    def _cancel(self, uow: UnitOfWork, message: GiftCardCancellationRequested) -> Result:
        return self.checkout.cancel(
            uow, card_id=message.card_id, order_id=message.order_id, code=message.code
        )

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


def _refusal(record: Record, invalid: Invalid) -> Json | None:
    """The rejected reply of a refused input that shows a message id; a bug here costs no more."""
    try:
        return rejected(record.value, invalid)
    except Exception as error:
        log.error("offset %d: no reply built (%s)", record.offset, type(error).__name__)
        return None


class CheckoutConsumer:
    """The Kafka side: poll, process per partition, publish, then commit group offsets."""

    def __init__(
        self,
        app: GiftCards,
        bootstrap: Link,
        topics: Topics,
        *,
        group_id: str | None = None,
        instance_id: str | None = None,
        max_poll_records: int = 2000,
        cloudevents: CloudEvents = DEFAULT,
    ) -> None:
        self.processor = CheckoutProcessor(app, topics.checkout)
        self.topics = topics
        self.cloudevents = cloudevents
        self.unpositioned: set[TopicPartition] = set()
        # Set once partitions are assigned and positioned: the consumer is ready for input.
        self.positioned = threading.Event()
        # Messages whose results are out and offsets committed (for health checks, benchmarks).
        self.handled = 0
        self.consumer = clients.consumer(
            bootstrap,
            group_id=group_id or topics.checkout_group,
            # Static membership: a restarted instance takes its partitions back at once instead
            # of waiting out the session of the process it replaces.
            group_instance_id=instance_id,
            session_timeout_ms=10_000,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            # Oversized inputs must reach us to be dead-lettered.
            max_partition_fetch_bytes=4 * 1024 * 1024,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        self.producer = clients.producer(
            bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            # A poll's results go out in one burst: fewer, larger record batches.
            batch_size=256 * 1024,
        )

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; the batch in hand is finished, published and committed first."""
        self.consumer.subscribe([self.topics.checkout], listener=_MarkAssigned(self.unpositioned))
        try:
            while not stop.is_set():
                polled = self.consumer.poll(timeout_ms=500)
                if self.unpositioned:
                    # Records fetched from the group's position before seeking are dropped:
                    # they come again from the right offset.
                    self.seek_to_tracked(list(self.unpositioned), stop.is_set)
                    self.positioned.set()
                    continue
                if polled:
                    self.handle(polled, stop.is_set)
        except Stopped:
            # Stopped while the database was away: nothing of the batch in hand was published
            # nor committed; the next start resumes from the tracked offsets.
            log.info("stopped while waiting for the database")
        finally:
            self.close()

    def handle(
        self, polled: dict[TopicPartition, Sequence[Any]], stop: Callable[[], bool] = never
    ) -> Outcome:
        """One poll: a store transaction per partition, then one publish, flush and commit."""
        started = time.perf_counter()
        outcome = Outcome()
        for tp, records in polled.items():
            # Bounded transactions: psycopg's pipeline stalls on inserts of tens of thousands
            # of events, and shorter transactions hold the store's insert lock for less long.
            for start in range(0, len(records), MAX_TRANSACTION_MESSAGES):
                chunk = records[start : start + MAX_TRANSACTION_MESSAGES]
                done = self.processor.process(tp.partition, chunk, stop)
                outcome.results += done.results
                outcome.dead += done.dead
        if not self.still_owner(polled):
            return Outcome()
        self.publish(outcome)
        # Only a hint for the next start: the store's tracking record is the truth.
        self.consumer.commit(
            {tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1) for tp, rs in polled.items()}
        )
        count = sum(len(records) for records in polled.values())
        self.handled += count
        elapsed = time.perf_counter() - started
        log.info(
            "checkout batch partitions=%d count=%d accepted=%d rejected=%d dead=%d rate=%.0f/s",
            len(polled),
            count,
            outcome.count("accepted"),
            outcome.count("rejected"),
            len(outcome.dead),
            count / elapsed if elapsed else 0.0,
        )
        return outcome

    def still_owner(self, polled: dict[TopicPartition, Sequence[Any]]) -> bool:
        """Whether this member still owns the polled partitions, asked of the group coordinator
        right before publishing: a commit of the offsets the batch started from, which the
        coordinator refuses from a member of an older generation. A process frozen past its
        session (SIGSTOP, a long pause) comes back with a poll whose messages the new owner
        has applied and answered; it publishes nothing of it. If the check fails while we do
        own them, the batch is polled again (applied: its stored replies are replayed)."""
        try:
            self.consumer.commit(
                {tp: OffsetAndMetadata(rs[0].offset, "", -1) for tp, rs in polled.items()}
            )
            return True
        except KafkaError as exc:
            log.warning("checkout: not publishing a batch of %d partitions: the group no longer "
                        "confirms this member owns them (%s)", len(polled), type(exc).__name__)
        for tp, records in polled.items():
            if tp in self.consumer.assignment():
                self.consumer.seek(tp, records[0].offset)
        return False

    def publish(self, outcome: Outcome) -> None:
        """Results and dead letters, each with its CloudEvents headers (binary mode)."""
        futures = []
        for topic, headers, items in (
            (self.topics.results, self.cloudevents.result_headers, outcome.results),
            (self.topics.dead_letters, self.cloudevents.dead_letter_headers, outcome.dead),
        ):
            for key, value in items:
                raw_key = key.encode() if key else None
                futures.append(self.producer.send(
                    topic, key=raw_key, value=orjson.dumps(value), headers=headers(value, raw_key)
                ))
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused: offsets stay uncommitted

    def seek_to_tracked(
        self, partitions: Sequence[TopicPartition], stop: Callable[[], bool] = never
    ) -> None:
        """Resume at the group's committed offset, never after the store's tracked one."""
        for tp in partitions:
            self.unpositioned.discard(tp)
            if tp not in self.consumer.assignment():
                continue
            tracked = retry_transient(
                partial(self.processor.next_offset, tp.partition),
                what=f"checkout partition {tp.partition}",
                stop=stop,
            )
            committed = self.consumer.committed(tp)
            if tracked is None or committed is None:
                # No hint that the replies of applied offsets went out: replay them all.
                self.consumer.seek_to_beginning(tp)
                continue
            self.consumer.seek(tp, min(committed, tracked))

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()
        self.consumer.close(autocommit=False)


class _MarkAssigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the client's IO thread, which must not block: the poll loop does the seeking."""

    def __init__(self, unpositioned: set[TopicPartition]) -> None:
        self.unpositioned = unpositioned

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.unpositioned.difference_update(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.unpositioned.update(assigned)
