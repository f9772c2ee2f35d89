"""Publishing signed checkpoints on the forever-retained `giftcard.checkpoints` topic."""

from __future__ import annotations

from typing import Any

import orjson
from kafka import TopicPartition

from infra.config import Settings
from infra.kafka import clients
from infra.kafka.admin import ensure_topics
from infra.kafka.topics import Topics


def publish(settings: Settings, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The signed header (a full checkpoint's heads stay in its file: the root covers them;
    an increment's are sent too, so a deleted file is no loss)."""
    topics = Topics.of(settings)
    ensure_topics(settings.kafka_link, topics, settings.partitions,
                  settings.replication_factor)
    producer = clients.producer(settings.kafka_link, acks="all", enable_idempotence=True)
    try:
        value = {"header": checkpoint["header"], "signature": checkpoint["signature"]}
        if checkpoint["header"].get("kind") == "increment":  # small: its heads travel with it
            value["heads"] = checkpoint["heads"]
        meta = producer.send(topics.checkpoints, orjson.dumps(value)).get(timeout=30)
        producer.flush()
        return {"topic": meta.topic, "offset": meta.offset}
    finally:
        producer.close()


def published(settings: Settings, timeout_ms: int = 5000) -> list[dict[str, Any]]:
    """Every checkpoint on the topic, oldest first."""
    topic = Topics(settings.topic_prefix).checkpoints
    consumer = clients.consumer(settings.kafka_link, enable_auto_commit=False,
                                consumer_timeout_ms=timeout_ms)
    try:
        part = TopicPartition(topic, 0)
        if consumer.partitions_for_topic(topic) is None:
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
