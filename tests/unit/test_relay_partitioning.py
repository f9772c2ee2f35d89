"""The relay picks the partition Kafka's default partitioner would pick for each key."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner

from infra.kafka.batches import key_hash


class Metadata:
    """The three questions kafka-python's DefaultPartitioner asks of cluster metadata."""

    def __init__(self, topic: str, count: int) -> None:
        self.topic, self.count = topic, count

    def topics(self) -> set[str]:
        return {self.topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.count))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.count))


@given(st.uuids() | st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_partition_of_a_key_is_the_default_partitioners(key: UUID | bytes, count: int) -> None:
    raw = str(key).encode() if isinstance(key, UUID) else key
    expected = DefaultPartitioner().partition("t", raw, raw, None, None, Metadata("t", count))
    partitions = list(range(count))
    assert partitions[key_hash(raw) % count] == expected
