"""One relay's Kafka side: a transactional producer that publishes envelopes with its position."""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError
from kafka.partitioner.default import murmur2

from infra.envelope import published_topics, stored_envelope
from infra.kafka.admin import verify_topics
from infra.kafka.clients import Link, bootstrap_of
from infra.kafka.cloudevents import DEFAULT, CloudEvents
from infra.kafka.floor import raise_floor, read_floor
from infra.kafka.links import LinkChecker, clear_refused
from infra.kafka.positions import PositionBelowFloorError, committed_position
from infra.kafka.topics import TopicContractError, Topics
from infra.kafka.transactions import (
    COMMIT_TIMEOUT_MS,
    MAX_BLOCK_MS,
    discard,
    end_transaction,
    transactional_producer,
)
from infra.limits import ProcessingLimits
from infra.orjsonpydantic import PydanticMapper
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
        # Who was restricted or objecting as of `_limits_at` (rebuilt when it is not the
        # position: a start, or a batch that did not commit).
        self._limits, self._limits_at = ProcessingLimits(service.app.pseudonyms), -1
        self._links = LinkChecker(service.app.recorder, service.app.mapper)
        self._refusal_to_clear = True  # a stop recorded by an earlier run, until we pass it

    @property
    def held_back(self) -> bool:
        """Whether the last batch stopped short of the events it read, at a forged link."""
        return self._links.held_back

    def publish_batch(self) -> int:
        """One transaction: the next notifications' envelopes + the new position, committed
        only once the broker acknowledged every record of it."""
        producer = self.connect()
        assert self.position is not None
        started = time.monotonic()
        app = self.service.app
        # Private events (indexes, replies) are never published: the store filters them out.
        notifications = app.recorder.select_notifications(
            self.position + 1, self.batch_size, topics=published_topics()
        )
        if not notifications:
            return 0
        # Each stored event decoded once, for its link's check and for its envelope. Published
        # up to a forged link, never past it (the next batch then stops there).
        mapper = app.mapper
        assert isinstance(mapper, PydanticMapper)  # the composition root installs it
        decoded = self._links.sealed_prefix([(n, mapper.to_state(n)) for n in notifications])
        first, last = decoded[0][0].id, decoded[-1][0].id
        if self._limits_at != self.position:
            self._limits = ProcessingLimits.from_store(app, self.position)
        self._limits_at = -1  # until this batch commits
        partitions = sorted(producer.partitions_for(self.topics.events))
        # Every record is built before the first is sent. Sent in a tight loop they fill the
        # producer's batches as a raw producer's do; built between sends, the sender thread
        # drained each partition's batch with a record or two in it, and was woken per batch.
        records = []
        for notification, state in decoded:
            envelope = stored_envelope(app.mapper, notification, app.pseudonyms, state)
            assert envelope is not None  # the topic filter admits published events only
            envelope = self._limits.see(envelope)
            key, value, record_headers = record_of(envelope, self.cloudevents)
            records.append((key, value, record_headers,
                            partitions[key_hash(key) % len(partitions)]))
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
        self.position = self.confirmed = self._limits_at = last
        try:
            raise_floor(self.service.db, self.transactional_id, last, self._partitions)
            if self._refusal_to_clear:
                clear_refused(self.service.db, self.transactional_id, last)
                self._refusal_to_clear = False
        except Exception as exc:  # a floor lower than the truth only weakens the check
            log.warning("relay %s could not record position %d: %s", self.instance, last, exc)
        elapsed = time.monotonic() - started
        published = len(decoded)
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
        return self._producer

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
        if producer is None:
            return
        try:
            end_transaction(producer, commit=False)
        except Exception as exc:  # none open, fenced or broker away: the next init aborts it
            log.debug("abort after failure did not complete: %s", exc)
        discard(producer)


@lru_cache(maxsize=65_536)
def key_hash(key: bytes) -> int:
    """Kafka's default partitioner hash (Java-compatible murmur2, made positive): the relay
    picks the same partition any Kafka producer would, but hashes a card's key once, not per
    event (kafka-python's murmur2 is pure Python)."""
    return int(murmur2(key)) & 0x7FFFFFFF


def record_of(
    envelope: dict[str, Any], cloudevents: CloudEvents = DEFAULT
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of an envelope's record: keyed by card (stream for attempts and
    subjects) so that a card's events stay in order in one partition; the value is the
    envelope, the headers its CloudEvents attributes (binary mode) that consumers route on
    without parsing the value."""
    key = str(envelope["card_id"] or envelope["stream_id"]).encode()
    return key, orjson.dumps(envelope), cloudevents.event_headers(envelope, key)
