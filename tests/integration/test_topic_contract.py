"""The topics are part of the contract: created with their settings, existing ones checked at start
and at each relay reconnect, refused (exit 2, the topic and the setting named) when they differ in
anything that can lose or duplicate records; the relay never moves its position backwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import KafkaTimeoutError

from dev.services import unique_topic_prefix
from infra.bootstrap import Service
from infra.kafka.admin import ensure_topics, verify_topics
from infra.kafka.floor import read_floor
from infra.kafka.positions import PositionBelowFloorError
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from tests.faults.processes import GIFTCARDS, ServiceProcess
from tests.integration.test_relay import fill, read_committed

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]
ONE_MINUTE_MS = "60000"


def giftcards(env: dict[str, str], *args: str, timeout: float = 90) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([GIFTCARDS, "--json", *args], env={**os.environ, **env},
                          capture_output=True, timeout=timeout, check=False)
    return done.returncode, orjson.loads(done.stdout.splitlines()[-1]) if done.stdout else {}


def kafka_env(env_for: dict[str, str], bootstrap: str, topics: Topics) -> dict[str, str]:
    return {**env_for, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "GIFTCARDS_TOPIC_PREFIX": topics.prefix, "GIFTCARDS_PARTITIONS": "1"}


def create(bootstrap: str, name: str, configs: dict[str, str], partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    finally:
        admin.close()


def assert_refused(code: int, answer: dict[str, Any], *words: str) -> None:
    assert code == 2, answer
    error = answer["error"]
    assert error["code"] == "topic_contract_violated", error
    for word in words:
        assert word in error["message"], error


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_refuses_a_compacted_events_topic_naming_the_topic_and_the_setting(
    kafka_bootstrap: str, env_for: dict[str, str]
) -> None:
    topics = Topics(unique_topic_prefix())
    create(kafka_bootstrap, topics.events, {"cleanup.policy": "compact"})
    env = kafka_env(env_for, kafka_bootstrap, topics)
    code, answer = giftcards(env, "serve", "--without-projections")
    assert_refused(code, answer, topics.events, "cleanup.policy is 'compact'", "'delete'")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_refuses_a_positions_topic_that_expires_its_records(
    kafka_bootstrap: str, env_for: dict[str, str]
) -> None:
    topics = Topics(unique_topic_prefix())
    create(kafka_bootstrap, topics.relay_positions,
           {"cleanup.policy": "delete", "retention.ms": ONE_MINUTE_MS})
    env = kafka_env(env_for, kafka_bootstrap, topics)
    code, answer = giftcards(env, "serve", "--without-projections")
    assert_refused(code, answer, topics.relay_positions, f"retention.ms is '{ONE_MINUTE_MS}'",
                   "cleanup.policy is 'delete'")
    # Compacted only, its retention deletes nothing (as earlier versions created it): accepted.
    kept = Topics(unique_topic_prefix())
    create(kafka_bootstrap, kept.relay_positions,
           {"cleanup.policy": "compact", "retention.ms": ONE_MINUTE_MS})
    ensure_topics(kafka_bootstrap, kept, 1)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_input_topic_is_created_with_a_short_retention_and_a_longer_one_is_refused(
    kafka_bootstrap: str, env_for: dict[str, str]
) -> None:
    topics = Topics(unique_topic_prefix())
    ensure_topics(kafka_bootstrap, topics, 1)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        from infra.kafka.admin import _configs

        assert _configs(admin, [topics.checkout])[topics.checkout]["retention.ms"] == str(
            72 * 3_600_000)  # personal data in clear: three days, not the broker's default
    finally:
        admin.close()
    other = Topics(unique_topic_prefix())
    create(kafka_bootstrap, other.checkout, {"cleanup.policy": "delete", "retention.ms": "-1"})
    code, answer = giftcards(kafka_env(env_for, kafka_bootstrap, other), "relay", "--once")
    assert_refused(code, answer, other.checkout, "retention.ms is '-1'")


@pytest.mark.parametrize("backend", ["postgres"])
def test_r3_serve_refuses_an_events_topic_whose_partition_count_changed_since_the_relay_published(
    kafka_bootstrap: str, env_for: dict[str, str], service: Service
) -> None:
    topics = Topics(unique_topic_prefix())
    env = kafka_env(env_for, kafka_bootstrap, topics)
    fill(service.app, 5)
    code, answer = giftcards(env, "relay", "--once")
    assert code == 0 and answer["published"] > 0, answer
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_partitions({topics.events: NewPartitions(total_count=3)})
    finally:
        admin.close()
    fill(service.app, 5, tag="after")
    before = len(read_committed(kafka_bootstrap, topics.events))
    code, answer = giftcards(env, "serve", "--without-projections")
    assert_refused(code, answer, topics.events, "partition count is 3", "with 1 partitions")
    assert len(read_committed(kafka_bootstrap, topics.events)) == before  # nothing published


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_r3_a_relay_reading_a_position_below_its_confirmed_one_stops_and_republishes_nothing(
    kafka_bootstrap: str, env_for: dict[str, str], service: Service
) -> None:
    topics = Topics(unique_topic_prefix())
    ensure_topics(kafka_bootstrap, topics, 1)
    fill(service.app, 10)
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=topics.relay_transactional_id)
    try:
        published = relay.drain()
    finally:
        relay.close()
    assert published > 0
    # The positions lost (as by a retention that ran): the topic deleted and created again.
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_topics([topics.relay_positions])
    finally:
        admin.close()
    recreate_once_deleted(kafka_bootstrap, topics, topics.relay_positions)
    fill(service.app, 3, tag="after")
    again = Relay(service, kafka_bootstrap, topics, transactional_id=topics.relay_transactional_id)
    try:
        with pytest.raises(PositionBelowFloorError, match="below"):
            again.drain()
    finally:
        again.close()
    assert len(read_committed(kafka_bootstrap, topics.events)) == published  # none twice
    floor = read_floor(service.db, topics.relay_transactional_id)
    assert floor is not None and floor.stopped_at_read == 0  # the alert, for status and metrics
    code, answer = giftcards(kafka_env(env_for, kafka_bootstrap, topics), "relay", "--once")
    assert code == 2 and answer["error"]["code"] == "relay_position_regressed", answer
    assert len(read_committed(kafka_bootstrap, topics.events)) == published


def recreate_once_deleted(bootstrap: str, topics: Topics, name: str) -> None:
    """Waits until the broker has finished deleting `name`, creates it again and waits until it
    is described: a deletion in progress still lists the topic but describes nothing of it."""
    deadline = time.monotonic() + 60
    created = False
    while not created:
        assert time.monotonic() < deadline, f"{name} was not created again"
        with contextlib.suppress(KafkaTimeoutError):  # still being deleted: listed, not described
            created = name in ensure_topics(bootstrap, topics, 1)
        if not created:
            time.sleep(0.5)
    while True:
        try:
            verify_topics(bootstrap, topics, [name])
            return
        except KafkaTimeoutError:
            assert time.monotonic() < deadline, f"{name} was not described after its creation"
            time.sleep(0.5)


def test_a_topic_not_yet_known_to_the_broker_is_asked_again_not_refused(
    kafka_bootstrap: str,
) -> None:
    topics = Topics(unique_topic_prefix())  # none of its topics exists
    with pytest.raises(KafkaTimeoutError, match="not described yet"):
        verify_topics(kafka_bootstrap, topics, [topics.events])


def test_a_service_consumer_reading_a_topic_that_does_not_exist_does_not_create_it(
    kafka_bootstrap: str,
) -> None:
    """A broker creates a topic on first use with its own defaults (a week's retention): the
    service's clients never ask it to, so a topic exists only as its contract says."""
    from infra.kafka import clients

    missing = f"{unique_topic_prefix()}giftcard.events"
    consumer = clients.consumer(kafka_bootstrap, group_id=f"{missing}-reader")
    consumer.subscribe([missing])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=500)
    finally:
        consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert missing not in admin.list_topics()
    finally:
        admin.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_views_started_before_any_relay_find_the_events_topic_created_with_its_contract(
    kafka_bootstrap: str, env_for: dict[str, str], tmp_path: Path
) -> None:
    """`project --source kafka` first on a new prefix (seen in a fault test: it created the
    events topic with the broker's retention, and the relays started with it were refused)."""
    topics = Topics(unique_topic_prefix())
    env = kafka_env(env_for, kafka_bootstrap, topics)
    with ServiceProcess(["project", "--source", "kafka"], env, tmp_path / "project.log") as views:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            deadline = time.monotonic() + 60
            while topics.events not in admin.list_topics():
                assert views.alive(), views.log_tail()
                assert time.monotonic() < deadline, views.log_tail()
                time.sleep(0.2)
            from infra.kafka.admin import _configs

            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(KafkaTimeoutError, KeyError):
                    retention = _configs(admin, [topics.events])[topics.events]["retention.ms"]
                    break
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert retention == "-1"  # the contract's: never the broker's week
        finally:
            admin.close()
        code, answer = giftcards(env, "relay", "--once")
        assert code == 0, answer
        assert views.alive(), views.log_tail()
