"""A checkout consumer frozen (SIGSTOP) while it publishes a batch's replies, its partitions
moved to another instance, then resumed (SIGCONT): every input gets exactly one reply on
`giftcard.checkout-results` as a read_committed reader sees it, and none is lost."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.faults.harness import ServiceProcess, reply_problems
from tests.integration.kafka_helpers import PARTITIONS, create_topics, produce
from tests.integration.test_checkout_consumer import ordered
from tests.integration.test_relay import read_committed

pytestmark = [pytest.mark.serial, pytest.mark.faults, pytest.mark.timeout(240)]

ORDERS = 1200
RESENT_EVERY = 40  # an at-least-once producer resends some inputs as they were: two replies each
SETTLED_S = 3.0  # no new record on the results topic for this long: every process is done


def checkout_inputs() -> tuple[list[bytes], Counter[str]]:
    raw = [ordered(f"frozen-{i}", f"frozen-order-{i}") for i in range(ORDERS)]
    raw += raw[::RESENT_EVERY]
    return raw, Counter(str(orjson.loads(value)["message_id"]) for value in raw)


def results_watcher(bootstrap: str, topics: Topics) -> KafkaConsumer:
    """Reads every record written to the results topic (read_uncommitted, short fetch waits):
    the first one says a consumer is publishing a batch, before it has committed it."""
    watcher = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                            isolation_level="read_uncommitted", fetch_max_wait_ms=5)
    parts = [TopicPartition(topics.results, p) for p in range(PARTITIONS)]
    watcher.assign(parts)
    watcher.seek_to_beginning()
    return watcher


def written_records(watcher: KafkaConsumer) -> int:
    parts = list(watcher.assignment())
    return sum(watcher.end_offsets(parts).values())


def wait_until_publishing(watcher: KafkaConsumer, consumer: ServiceProcess) -> None:
    deadline = time.monotonic() + 120
    while not any(watcher.poll(timeout_ms=5).values()):
        assert consumer.alive(), consumer.log_tail()
        assert time.monotonic() < deadline, f"no reply published:\n{consumer.log_tail()}"


def wait_for_every_reply(bootstrap: str, topics: Topics, expected: Counter[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        answered = {str(r[3]["message_id"]) for r in read_committed(bootstrap, topics.results)}
        if answered >= set(expected) or time.monotonic() > deadline:
            return
        time.sleep(1.0)


def wait_until_settled(watcher: KafkaConsumer) -> None:
    """Until nothing more is written to the results topic (the resumed process's late batch
    included), at most a minute."""
    deadline = time.monotonic() + 60
    last, since = written_records(watcher), time.monotonic()
    while time.monotonic() - since < SETTLED_S and time.monotonic() < deadline:
        time.sleep(0.5)
        if (now := written_records(watcher)) != last:
            last, since = now, time.monotonic()


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_r3_consumer_frozen_while_publishing_replies_then_resumed_answers_each_input_once(
    env_for: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics)
    env = {**env_for, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "GIFTCARDS_TOPIC_PREFIX": topics.prefix}
    raw, expected = checkout_inputs()
    produce(kafka_bootstrap, topics.checkout, raw)
    frozen = ServiceProcess(["consume", "checkout", "--instance-id", "frozen"], env,
                            tmp_path / "frozen.log")
    other = ServiceProcess(["consume", "checkout", "--instance-id", "other"], env,
                           tmp_path / "other.log")
    watcher = results_watcher(kafka_bootstrap, topics)
    try:
        frozen.start()
        wait_until_publishing(watcher, frozen)
        frozen.freeze()
        try:
            # Its session runs out: the group gives all partitions to the other instance,
            # which finds the frozen batch applied in the store.
            other.start()
            wait_for_every_reply(kafka_bootstrap, topics, expected)
        finally:
            frozen.thaw()
        # The resumed process finishes the batch it was publishing, then rejoins the group.
        wait_until_settled(watcher)
        replies = [r[3] for r in read_committed(kafka_bootstrap, topics.results)]
        problems = reply_problems(replies, expected)
        assert not problems, f"{len(problems)} problems: {problems[:20]}"
        assert other.alive(), other.log_tail()
        assert frozen.alive(), frozen.log_tail()
        assert other.terminate() == 0, other.log_tail()
        assert frozen.terminate() == 0, frozen.log_tail()
    finally:
        watcher.close()
        frozen.kill()
        other.kill()
