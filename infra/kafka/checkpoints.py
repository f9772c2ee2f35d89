"""Publishing signed checkpoints on the forever-retained `giftcard.checkpoints` topic."""

from __future__ import annotations

from typing import Any

import orjson
from kafka import TopicPartition

from infra.config import Settings
from infra.kafka import clients
from infra.kafka.admin import ensure_topics
from infra.kafka.topics import Topics


class Publisher:
    """Publishes checkpoints through one producer, the topics ensured once (serve's
    increments come every few seconds); after a failure the next call starts afresh."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Any = None

    def __call__(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        """The signed header (a full checkpoint's heads stay in its file: the root covers
        them; an increment's are sent too, so a deleted file is no loss)."""
        settings = self.settings
        topics = Topics.of(settings)
        if self.producer is None:
            ensure_topics(settings.kafka_link, topics, settings.partitions,
                          settings.replication_factor)
            self.producer = clients.producer(settings.kafka_link, acks="all",
                                             enable_idempotence=True)
        value = {"header": checkpoint["header"], "signature": checkpoint["signature"]}
        if checkpoint["header"].get("kind") == "increment":  # small: its heads travel with it
            value["heads"] = checkpoint["heads"]
        try:
            meta = self.producer.send(topics.checkpoints, orjson.dumps(value)).get(timeout=30)
            self.producer.flush()
        except Exception:
            self.close()
            raise
        return {"topic": meta.topic, "offset": meta.offset}

    def close(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.close()


def publish(settings: Settings, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """One checkpoint published (`audit checkpoint`)."""
    publisher = Publisher(settings)
    try:
        return publisher(checkpoint)
    finally:
        publisher.close()


def published(settings: Settings, timeout_ms: int = 5000) -> list[dict[str, Any]]:
    """Every checkpoint on the topic, oldest first."""
    topic = Topics(settings.topic_prefix).checkpoints
    consumer = clients.consumer(settings.kafka_link, enable_auto_commit=False,
                                consumer_timeout_ms=timeout_ms)
    try:
        part = TopicPartition(topic, 0)
        if not consumer.partitions_for_topic(topic):  # an empty set: no such topic
            return []
        consumer.assign([part])
        consumer.seek_to_beginning(part)
        end = consumer.end_offsets([part])[part]
        found: list[dict[str, Any]] = []
        while consumer.position(part) < end:
            for records in consumer.poll(timeout_ms=1000).values():
                found.extend(orjson.loads(r.value) for r in records)
        return found
    finally:
        consumer.close()
