"""The relay's committed position on Kafka: its record, how it is read, a read below the floor."""

from __future__ import annotations

import time
from typing import Any

import orjson
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from infra.config import ConfigError
from infra.kafka import clients
from infra.kafka.clients import Link
from infra.kafka.topics import Topics
from infra.kafka.transactions import MAX_BLOCK_MS

POSITION_READ_TIMEOUT_S = 30.0
# The relay's committed position, one record per transaction on `giftcard.relay-positions`
# (key = the transactional id): the last notification id published.
POSITION_SCHEMA: dict[str, Any] = {
    "title": "RelayPosition",
    "type": "object",
    "properties": {"position": {"type": "integer", "minimum": 0}},
    "required": ["position"],
    "additionalProperties": False,
}


class PositionBelowFloorError(ConfigError):
    """Kafka's committed position is below one whose commit the broker confirmed: the positions
    topic or the broker lost it. Publishing from there would publish events a second time."""

    code = "relay_position_regressed"


def committed_position(bootstrap: Link, topics: Topics, transactional_id: str) -> int:
    """The last notification id that the relay `transactional_id` committed to Kafka (0 if
    none), read committed from the positions topic."""
    consumer = clients.consumer(
        bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        bootstrap_timeout_ms=MAX_BLOCK_MS,
    )
    try:
        partition = TopicPartition(topics.relay_positions, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        end = consumer.end_offsets([partition])[partition]
        position = 0
        key = transactional_id.encode()
        deadline = time.monotonic() + POSITION_READ_TIMEOUT_S
        while consumer.position(partition) < end:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError("reading the relay's committed position timed out")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == key:
                        position = int(orjson.loads(record.value)["position"])
        return position
    finally:
        consumer.close()
