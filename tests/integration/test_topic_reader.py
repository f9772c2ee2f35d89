"""A rebuild reads its topic in a process of its own: every record after the views' positions,
once and in order; the reader's errors raised in the rebuild; no reader outlives its rebuild."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from infra.kafka.topics import Topics
from projections.topicreader import topic_records
from tests.integration.child_processes import helpers_end_with, running, spawned
from tests.integration.kafka_helpers import PARTITIONS


def fill(bootstrap: str, topic: str, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for n in range(count):
            producer.send(topic, f'{{"n": {n}}}'.encode(), partition=n % PARTITIONS)
        producer.flush()
    finally:
        producer.close()


@pytest.fixture
def topic(kafka_bootstrap: str, topics: Topics) -> str:
    fill(kafka_bootstrap, topics.events, PARTITIONS * 1000)
    return topics.events


@pytest.fixture
def long_topic(kafka_bootstrap: str, topics: Topics) -> str:
    """More polls than the reader may hold ahead: it cannot have finished when looked at."""
    fill(kafka_bootstrap, topics.events, 40_000)
    return topics.events


def read_all(bootstrap: str, topic: str, seen: dict[int, int]) -> list[tuple[int, int, bytes]]:
    return [record for poll in topic_records(bootstrap, topic, seen) for record in poll]


def test_every_record_after_the_positions_seen_comes_once_in_partition_order(
    kafka_bootstrap: str, topic: str
) -> None:
    everything = read_all(kafka_bootstrap, topic, {})
    assert sorted(int(v[6:-1]) for _, _, v in everything) == list(range(PARTITIONS * 1000))
    for part in range(PARTITIONS):
        offsets = [o for p, o, _ in everything if p == part]
        assert offsets == list(range(1000))
    after = read_all(kafka_bootstrap, topic, {0: 499, 1: 998})
    assert sorted((p, o) for p, o, _ in after) == (
        [(0, o) for o in range(500, 1000)] + [(1, 999)]
        + [(p, o) for p in range(2, PARTITIONS) for o in range(1000)])


def test_a_topic_without_partitions_gives_nothing(kafka_bootstrap: str) -> None:
    assert read_all(kafka_bootstrap, f"never-made-{os.getpid()}-{time.time_ns()}", {}) == []


def test_the_readers_error_is_raised_in_the_rebuild_as_the_same_error() -> None:
    # The error is sent back as itself: the CLI answers a kafka-python error of the reader
    # (say NoBrokersAvailable) as "kafka_unavailable", as for a consumer of its own process.
    with pytest.raises(ValueError, match="notaport"):
        read_all("127.0.0.1:notaport", "anything", {})


def test_leaving_early_ends_the_reader(kafka_bootstrap: str, long_topic: str) -> None:
    polls = topic_records(kafka_bootstrap, long_topic, {})
    next(polls)
    assert spawned(os.getpid())
    polls.close()
    assert not [p for p in spawned(os.getpid()) if running(p)]


REBUILD = """
import sys, time
from projections.topicreader import topic_records
from tests.integration.kafka_helpers import PARTITIONS
for poll in topic_records(sys.argv[1], sys.argv[2], {}):
    print("polled", flush=True)
    time.sleep(60)  # the views stuck: the reader waits with the next polls in hand
"""


def test_a_reader_ends_on_its_own_when_its_rebuild_is_killed(
    kafka_bootstrap: str, long_topic: str
) -> None:
    rebuild = subprocess.Popen([sys.executable, "-c", REBUILD, kafka_bootstrap, long_topic],
                               stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    helpers_end_with(rebuild, "polled", "reader")
