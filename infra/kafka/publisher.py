"""One relay's Kafka side: a transactional producer that publishes envelopes with its position."""

from __future__ import annotations

import logging
import time

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from infra.kafka.admin import verify_topics
from infra.kafka.batches import BatchProcess, BatchReader
from infra.kafka.clients import Link, bootstrap_of
from infra.kafka.cloudevents import CloudEvents
from infra.kafka.floor import raise_floor, read_floor
from infra.kafka.links import clear_refused
from infra.kafka.positions import PositionBelowFloorError, committed_position
from infra.kafka.topics import TopicContractError, Topics
from infra.kafka.transactions import (
    COMMIT_TIMEOUT_MS,
    MAX_BLOCK_MS,
    discard,
    end_transaction,
    transactional_producer,
)
from infra.ratelog import RateLimitedLog
from infra.service import Service

log = logging.getLogger("giftcards.relay")
ACK_TIMEOUT_S = 30.0
ACK_WAIT_STEP_S = 5.0
ORPHAN_SWEEP_KEY = b"giftcards-relay-sweep"  # the records of the abort after each init


class Publisher:
    """Publishes the next batch of stored events and the new position in one Kafka
    transaction, committed only once the broker acknowledged every record of it; any failure
    leaves it to `reset`, after which the next batch starts from Kafka's committed position."""

    def __init__(
        self,
        service: Service,
        bootstrap: Link,
        topics: Topics,
        *,
        transactional_id: str,
        batch_size: int,
        instance: str,
        cloudevents: CloudEvents,
        waits: RateLimitedLog,
    ) -> None:
        self.service = service
        self.bootstrap = bootstrap
        self.topics = topics
        self.transactional_id = transactional_id
        self.batch_size = batch_size
        self.instance = instance
        self.cloudevents = cloudevents
        self._waits = waits
        self._producer: KafkaProducer | None = None
        self.position: int | None = None  # last notification id committed to Kafka
        # The highest position whose commit the broker confirmed (also kept in the store
        # database, `relay_floors`, for the next process): a later read of Kafka's committed
        # position below it means the broker or the positions topic lost that commit.
        self.confirmed = 0
        self._partitions = 0  # of the events topic, checked at each connect
        self.read_below = 0
        # (first, last) notification ids of a batch whose commit got no answer: the next init
        # settles it, and the position read after it says which way.
        self.uncertain: tuple[int, int] | None = None
        # Reads the batches from the position, one reader per connect (the position Kafka
        # committed): a batch read but not committed is read again by the next one.
        self._reader: BatchReader | BatchProcess | None = None
        self._held_back = False  # the last batch stopped short of a forged link
        self._sealed_seen = False  # a sealed link seen: an unsealed one after it is forged
        self._refusal_to_clear = True  # a stop recorded by an earlier run, until we pass it

    @property
    def held_back(self) -> bool:
        """Whether the last batch stopped short of the events it read, at a forged link."""
        return self._held_back

    def publish_batch(self) -> int:
        """One transaction: the next notifications' envelopes + the new position, committed
        only once the broker acknowledged every record of it."""
        producer = self.connect()
        assert self.position is not None
        started = time.monotonic()
        assert self._reader is not None  # connect made it, from the position
        batch = self._reader.read()
        if batch is None:
            return 0
        self._held_back, self._sealed_seen = batch.held_back, batch.sealed_seen
        records, first, last = batch.records, batch.first, batch.last
        producer.begin_transaction()
        sent = [
            producer.send(self.topics.events, key=key, value=value, headers=record_headers,
                          partition=partition)
            for key, value, record_headers, partition in records
        ]
        sent.append(
            producer.send(
                self.topics.relay_positions,
                key=self.transactional_id.encode(),
                value=orjson.dumps({"position": last}),
                partition=0,  # the one partition `committed_position` reads
            )
        )
        # kafka-python commits a transaction whose records expired unsent (events lost after a
        # broker outage): commit only when every record is acknowledged.
        self._await_acks(producer, len(sent))
        for future in sent:
            if not future.succeeded():
                raise future.exception or KafkaTimeoutError("record not acknowledged")
        try:
            end_transaction(producer, commit=True)
        except Exception:
            self.uncertain = (first, last)
            raise
        self.position = self.confirmed = last
        try:
            raise_floor(self.service.db, self.transactional_id, last, self._partitions)
            if self._refusal_to_clear:
                clear_refused(self.service.db, self.transactional_id, last)
                self._refusal_to_clear = False
        except Exception as exc:  # a floor lower than the truth only weakens the check
            log.warning("relay %s could not record position %d: %s", self.instance, last, exc)
        elapsed = time.monotonic() - started
        published = len(records)
        log.info(
            "relayed %d events up to position %d (%.0f events/s)",
            published,
            last,
            published / elapsed if elapsed else 0.0,
        )
        return published

    def _await_acks(self, producer: KafkaProducer, records: int) -> None:
        """flush(), saying what it waits for while the broker does not answer; raises
        KafkaTimeoutError after ACK_TIMEOUT_S."""
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while True:
            try:
                producer.flush(timeout=ACK_WAIT_STEP_S)
                return
            except KafkaTimeoutError:
                if time.monotonic() > deadline:
                    raise
                self._waits.warning(
                    "kafka",
                    "relay %s waiting for Kafka at %s to acknowledge %d records",
                    self.instance,
                    bootstrap_of(self.bootstrap),
                    records,
                )

    def connect(self) -> KafkaProducer:
        """Fence any zombie with our transactional id, then read where the last commit ended."""
        if self._producer is None:
            # Aborts a predecessor's open transaction (or settles our own commit whose answer
            # never came), so the position read below is final.
            producer = transactional_producer(self.bootstrap, self.transactional_id)
            self._producer = producer  # from here on, `reset` closes it on any failure
            self._check_topics(producer)
            self._close_orphans(producer)
            self.position = self.settled(
                committed_position(self.bootstrap, self.topics, self.transactional_id))
            self._reader = self._read_from(self.position, sorted(
                producer.partitions_for(self.topics.events)))
        return self._producer

    def _read_from(self, position: int, partitions: list[int]) -> BatchReader | BatchProcess:
        """A reader in a process of its own (the store's decoding and the envelopes' building
        beside the producer: +31% events/s on a backlog, docs/operations.md); in this process
        for an in-memory store, which no other process can open."""
        args = (self.cloudevents, position, self.batch_size, partitions, self._sealed_seen)
        if self.service.db.in_memory:
            return BatchReader(self.service, *args)
        return BatchProcess(self.service.settings, *args)

    def _check_topics(self, producer: KafkaProducer) -> None:
        """At each (re)connect: the two topics still as the contract says, the events topic
        with the partition count of the last published position (raises TopicContractError)."""
        settings = self.service.settings
        verify_topics(self.bootstrap, self.topics,
                      [self.topics.events, self.topics.relay_positions],
                      settings.replication_factor, bootstrap_timeout_ms=MAX_BLOCK_MS)
        self._partitions = len(producer.partitions_for(self.topics.events))
        floor = read_floor(self.service.db, self.transactional_id)
        if floor is not None:
            self.confirmed = max(self.confirmed, floor.position)
            if floor.partitions and floor.partitions != self._partitions:
                raise TopicContractError(
                    f"topic {self.topics.events}: partition count is {self._partitions}, the "
                    f"relay published up to position {floor.position} with {floor.partitions} "
                    f"partitions: a card's later events would land on another partition than "
                    f"its earlier ones (per-card order lost). Restore the partition count, or "
                    f"republish into a new topic (docs/operations.md, topic contract)")

    def _close_orphans(self, producer: KafkaProducer) -> None:
        """Abort one transaction holding a record on every partition the relay writes (never
        seen by a read_committed reader). A broker that lost a commit it had confirmed (seen
        after a restart) can leave our records on a partition without any marker; the
        broker would count them into our next commit there, and the events we publish again
        would show twice. This abort's marker ends them as aborted first."""
        partitions = sorted(producer.partitions_for(self.topics.events))
        producer.begin_transaction()
        sent = [producer.send(self.topics.events, key=ORPHAN_SWEEP_KEY, value=b"", partition=p)
                for p in partitions]
        sent.append(producer.send(self.topics.relay_positions, key=ORPHAN_SWEEP_KEY, value=b"",
                                  partition=0))
        self._await_acks(producer, len(sent))
        for future in sent:
            if not future.succeeded():
                raise future.exception or KafkaTimeoutError("record not acknowledged")
        end_transaction(producer, commit=False, timeout_ms=COMMIT_TIMEOUT_MS)  # not best effort

    def settled(self, read: int) -> int:
        """Kafka's committed position read after an init, said in the log with what it tells
        about an uncertain commit; a read below a confirmed commit is logged as an error."""
        manager = self._producer._transaction_manager if self._producer else None
        log.info("relay %s initialised (%s): Kafka's committed position is %d",
                 self.instance, manager.producer_id_and_epoch if manager else "-", read)
        if self.uncertain is not None:
            first, last = self.uncertain
            outcome = "committed" if read >= last else "aborted" if read < first else "unclear"
            log.warning("relay %s: the unanswered commit of positions %d-%d was %s",
                        self.instance, first, last, outcome)
            self.uncertain = None
        if read < self.confirmed:
            # Seen after a broker restart (a commit the coordinator confirmed, then forgot) and
            # with a positions topic that expired its records: publishing from `read` again
            # would put every event after it on the topic a second time.
            self.read_below = read
            raise PositionBelowFloorError(
                f"Kafka's committed position {read} on {self.topics.relay_positions} is below "
                f"{self.confirmed}, whose commit the broker confirmed: the broker or the "
                f"positions topic lost it; not publishing again from {read + 1}")
        return read

    def reset(self) -> None:
        """Drop the producer (aborting its transaction) and the position; never raises."""
        producer, self._producer, self.position = self._producer, None, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if producer is None:
            return
        try:
            end_transaction(producer, commit=False)
        except Exception as exc:  # none open, fenced or broker away: the next init aborts it
            log.debug("abort after failure did not complete: %s", exc)
        discard(producer)
