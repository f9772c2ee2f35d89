"""Exactly-once relay: the store's notification log → `giftcard.events`, in Kafka transactions."""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from infra.envelope import CONTENT_TYPE, published_topics, stored_envelope
from infra.kafka.topics import Topics
from infra.service import Service
from infra.transient import Stopped, Waiter, is_transient

log = logging.getLogger("giftcards.relay")
POLL_INTERVAL_S = 0.2
RETRIES = 5
BATCH_SIZE = 5000  # events per Kafka transaction, at most: fewer commits, ~3 MB in hand
# Also the benchmark's raw-producer baseline. Record batches of 256 KiB instead of kafka-python's
# 16 KiB default: a relay batch is a burst of thousands of ~600 B records (+20% measured).
PRODUCER_SETTINGS: dict[str, Any] = {
    "enable_idempotence": True,
    "acks": "all",
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "max_in_flight_requests_per_connection": 5,
}


class Relay:
    """Publishes each stored event once: events and the relay's position commit together."""

    def __init__(
        self,
        service: Service,
        bootstrap: str,
        topics: Topics,
        *,
        transactional_id: str = "giftcards-relay",
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.service = service
        self.bootstrap = bootstrap
        self.topics = topics
        self.transactional_id = transactional_id
        self.batch_size = batch_size
        self._producer: KafkaProducer | None = None
        self._position: int | None = None  # last notification id committed to Kafka

    @property
    def position(self) -> int:
        """The last notification id committed to Kafka (read from Kafka when not yet known)."""
        if self._position is None:
            self._connect()
        assert self._position is not None
        return self._position

    def drain(self) -> int:
        """Publish everything stored now; returns how many events were published."""
        total = 0
        while True:
            published = self._publish_with_retry()
            total += published
            if published < self.batch_size:
                return total

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: publish batches, waiting a short poll interval when caught up."""
        failures = 0
        store = Waiter("relay", stop.is_set)
        try:
            while not stop.is_set():
                try:
                    seen = self._publish_batch()
                    failures = 0
                    store.recovered()
                except KafkaError as exc:
                    failures += 1
                    log.warning("relay batch failed (%s); retrying from Kafka's position", exc)
                    self._reset()
                    stop.wait(min(5.0, 0.2 * 2**failures))
                    continue
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    # The store is away (restarting). Reading comes before the transaction
                    # begins, so nothing was sent: wait, then read again from the position.
                    store.wait(exc)
                    continue
                if seen < self.batch_size:
                    stop.wait(POLL_INTERVAL_S)
        except Stopped:
            pass  # asked to stop while the store was away
        finally:
            self.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

    def _publish_with_retry(self) -> int:
        for attempt in range(RETRIES):
            try:
                return self._publish_batch()
            except KafkaError as exc:
                if attempt == RETRIES - 1:
                    raise
                log.warning("relay batch failed (%s); retrying from Kafka's position", exc)
                self._reset()
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _publish_batch(self) -> int:
        """One transaction: the next notifications' envelopes + the new position."""
        producer = self._connect()
        assert self._position is not None
        started = time.monotonic()
        app = self.service.app
        # Private events (indexes, replies) are never published: the store filters them out.
        notifications = app.recorder.select_notifications(
            self._position + 1, self.batch_size, topics=published_topics()
        )
        if not notifications:
            return 0
        last = notifications[-1].id
        partitions = sorted(producer.partitions_for(self.topics.events))
        producer.begin_transaction()
        for notification in notifications:
            envelope = stored_envelope(app.mapper, notification)
            assert envelope is not None  # the topic filter admits published events only
            key, value, record_headers = record_of(envelope)
            producer.send(
                self.topics.events,
                key=key,
                value=value,
                headers=record_headers,
                partition=partitions[key_hash(key) % len(partitions)],
            )
        producer.send(
            self.topics.relay_positions,
            key=self.transactional_id.encode(),
            value=orjson.dumps({"position": last}),
        )
        producer.commit_transaction()
        self._position = last
        elapsed = time.monotonic() - started
        published = len(notifications)
        log.info(
            "relayed %d events up to position %d (%.0f events/s)",
            published,
            last,
            published / elapsed if elapsed else 0.0,
        )
        return published

    def _connect(self) -> KafkaProducer:
        """Fence any zombie with our transactional id, then read where the last commit ended."""
        if self._producer is None:
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                transactional_id=self.transactional_id,
                **PRODUCER_SETTINGS,
            )
            # Aborts a killed predecessor's open transaction, so the position read below is final.
            producer.init_transactions()
            self._producer = producer
            self._position = self._committed_position()
        return self._producer

    def _reset(self) -> None:
        """After an error: drop the producer (aborting its transaction) and re-read the position."""
        producer, self._producer, self._position = self._producer, None, None
        if producer is None:
            return
        try:
            producer.abort_transaction()
        except Exception as exc:  # fenced or broken: closing is all that is left to do
            log.info("abort after failure did not complete: %s", exc)
        producer.close(timeout=5)

    def _committed_position(self) -> int:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        try:
            partition = TopicPartition(self.topics.relay_positions, 0)
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            end = consumer.end_offsets([partition])[partition]
            position = 0
            key = self.transactional_id.encode()
            while consumer.position(partition) < end:
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        if record.key == key:
                            position = int(orjson.loads(record.value)["position"])
            return position
        finally:
            consumer.close()


@lru_cache(maxsize=65_536)
def key_hash(key: bytes) -> int:
    """Kafka's default partitioner hash (Java-compatible murmur2, made positive): the relay
    picks the same partition any Kafka producer would, but hashes a card's key once, not per
    event (kafka-python's murmur2 is pure Python)."""
    return int(murmur2(key)) & 0x7FFFFFFF


def record_of(envelope: dict[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of an envelope's record: keyed by card (stream for attempts and
    subjects) so that a card's events stay in order in one partition."""
    key = str(envelope["card_id"] or envelope["stream_id"]).encode()
    return key, orjson.dumps(envelope), headers(envelope)


def headers(envelope: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The record headers of an envelope: consumers route on them without parsing the value."""
    return [
        ("event_type", str(envelope["event_type"]).encode()),
        ("schema_version", str(envelope["schema_version"]).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
