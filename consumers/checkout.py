"""The checkout consumer: `order.checkout` -> commands stored with their offsets -> replies."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast
from uuid import uuid4

import orjson
from kafka import KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from application.cards import GiftCards
from consumers.checkout_processor import CheckoutProcessor, Outcome
from infra.kafka import clients
from infra.kafka.admin import METADATA_MAX_AGE_MS
from infra.kafka.clients import Link
from infra.kafka.cloudevents import DEFAULT, CloudEvents
from infra.kafka.topics import Topics
from infra.kafka.transactions import (
    COMMIT_TIMEOUT_MS,
    discard,
    end_transaction,
    transactional_producer,
)
from infra.transient import Stopped, never, retry_transient

# A partition's messages per store transaction: each commit waits for its fsync, which on a
# busy disk outweighs the Python work of hundreds of messages (measured: at 500, half of the
# processing time waited on 53 commits for 20,000 messages; at 1,000, 32 commits and 28% less
# time). Still far below the tens of thousands of events that stall psycopg's pipeline.
MAX_TRANSACTION_MESSAGES = 1000
log = logging.getLogger("giftcards.checkout")
# A batch's replies and offsets are one Kafka transaction, open only while they are sent: one
# frozen longer is aborted by the broker (its replies never visible), so the next owner waits
# at most this long for a frozen predecessor's pending offsets.
TRANSACTION_TIMEOUT_MS = 15_000
COMMITTED_WAIT_MS = 1_000  # the stop flag is checked between waits for pending offsets

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
        self.bootstrap = bootstrap
        # Unique per live process (a restart of a static member fences its predecessor at once,
        # aborting its open transaction); a zombie of another member is fenced by its group
        # generation instead (see publish).
        self.transactional_id = f"{self.topics.checkout_group}.{instance_id or uuid4().hex}"
        self._producer: KafkaProducer | None = None

    @property
    def producer(self) -> KafkaProducer:
        """The transactional producer, made (and its transactional id's predecessor fenced) on
        first use and after a failed transaction left it unusable."""
        if self._producer is None:
            self._producer = transactional_producer(
                self.bootstrap, self.transactional_id,
                transaction_timeout_ms=TRANSACTION_TIMEOUT_MS)
        return self._producer

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; the batch in hand is finished, published and committed first."""
        self.consumer.subscribe([self.topics.checkout], listener=_MarkAssigned(self.unpositioned))
        try:
            # Before reading any committed offset: fences the transactions of this process's
            # predecessor under the same instance id, so those offsets are final.
            self.producer  # noqa: B018
            while not stop.is_set():
                polled = self.consumer.poll(timeout_ms=500)
                # The membership these records were handed out under: the broker refuses the
                # batch's transaction if the group has moved on since (KIP-447).
                member = self.consumer.group_metadata()
                if self.unpositioned:
                    taken = list(self.unpositioned)
                    self.seek_to_tracked(taken, stop.is_set)
                    self.positioned.set()
                    # Records of the partitions just repositioned come again from the right
                    # offset; the other partitions' positions moved past theirs with this poll,
                    # so dropping them would skip those messages for good.
                    polled = {tp: rs for tp, rs in polled.items() if tp not in taken}
                if polled:
                    self.handle(polled, stop.is_set, member)
        except Stopped:
            # Stopped while the database was away: nothing of the batch in hand was published
            # nor committed; the next start resumes from the tracked offsets.
            log.info("stopped while waiting for the database")
        finally:
            self.close()

    def handle(
        self,
        polled: dict[TopicPartition, Sequence[Any]],
        stop: Callable[[], bool] = never,
        member: Any = None,
    ) -> Outcome:
        """One poll: a store transaction per partition, then the replies, dead letters and
        offsets in one Kafka transaction (`member`: the group metadata of the poll)."""
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
        offsets = {tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1) for tp, rs in polled.items()}
        try:
            self.publish(outcome, offsets, member or self.consumer.group_metadata())
        except KafkaError as exc:
            self.rewind(polled, exc)
            return Outcome()
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

    def publish(
        self, outcome: Outcome, offsets: dict[TopicPartition, OffsetAndMetadata], member: Any
    ) -> None:
        """Results and dead letters (each with its CloudEvents headers, binary mode) and the
        group offsets past them, in ONE Kafka transaction: a read_committed reader sees a
        batch's replies exactly when its offsets are committed, so whoever owns the partition
        next replays (from the store) exactly the replies that are not out. A member frozen
        past its session (SIGSTOP, a long pause) comes back to a transaction the broker either
        aborted on timeout or refuses to commit under its old generation: none of its late
        replies become visible. Raises KafkaError if the transaction did not commit."""
        producer = self.producer
        producer.begin_transaction()
        for topic, headers, items in (
            (self.topics.results, self.cloudevents.result_headers, outcome.results),
            (self.topics.dead_letters, self.cloudevents.dead_letter_headers, outcome.dead),
        ):
            for key, value in items:
                raw_key = key.encode() if key else None
                producer.send(
                    topic, key=raw_key, value=orjson.dumps(value), headers=headers(value, raw_key)
                )
        # As producer.send_offsets_to_transaction, with a bound on the wait for the broker.
        added = producer._transaction_manager.send_offsets_to_transaction(offsets, member)
        producer._sender.wakeup()
        if not added.wait(timeout_ms=COMMIT_TIMEOUT_MS):
            raise KafkaTimeoutError(f"offsets not in the transaction in {COMMIT_TIMEOUT_MS} ms")
        # Commits only if every record was acknowledged; one refused fails the whole batch.
        end_transaction(producer, commit=True)

    def rewind(self, polled: dict[TopicPartition, Sequence[Any]], error: KafkaError) -> None:
        """After a transaction that did not commit: replace the producer (the new one fences
        this one's transaction should it still be open) and take the batch's partitions back
        from the store's and group's positions, as after a rebalance."""
        log.warning("checkout: a batch of %d partitions not published, taken again from the "
                    "committed offsets (%s: %s)", len(polled), type(error).__name__, error)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                end_transaction(producer, commit=False)
            except Exception as exc:  # fenced, or the broker away: the next init aborts it
                log.debug("abort after a failed batch did not complete: %s", exc)
            discard(producer)
        try:
            # A new producer under our transactional id settles the old one's transaction
            # (a commit whose answer was lost completes or aborts) before the offsets are read.
            self.producer  # noqa: B018
        except KafkaError as exc:  # the broker away: made at the next batch
            log.debug("no new producer yet: %s", exc)
        self.unpositioned.update(tp for tp in polled if tp in self.consumer.assignment())

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
            committed = self.committed(tp, stop)
            if tracked is None or committed is None:
                # No hint that the replies of applied offsets went out: replay them all.
                self.consumer.seek_to_beginning(tp)
                continue
            self.consumer.seek(tp, min(committed, tracked))

    def committed(self, tp: TopicPartition, stop: Callable[[], bool] = never) -> int | None:
        """The group's committed offset, once stable: while a transaction holding offsets of
        `tp` is open (a predecessor frozen mid-commit), the broker answers
        UNSTABLE_OFFSET_COMMIT (read_committed asks for stable offsets) until it commits or
        the broker aborts it (TRANSACTION_TIMEOUT_MS). Raises Stopped if `stop()` meanwhile."""
        for attempt in itertools.count():
            try:
                return cast(int | None, self.consumer.committed(tp, timeout_ms=COMMITTED_WAIT_MS))
            except KafkaTimeoutError:
                if stop():
                    raise Stopped() from None
                if attempt == 0:
                    log.info("checkout partition %d: waiting for its committed offset (a pending "
                             "transaction's, or the broker away)", tp.partition)
        raise AssertionError("unreachable")

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()
        self.consumer.close(autocommit=False)


class _MarkAssigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the client's IO thread, which must not block: the poll loop does the seeking."""

    def __init__(self, unpositioned: set[TopicPartition]) -> None:
        self.unpositioned = unpositioned

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.unpositioned.difference_update(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.unpositioned.update(assigned)
