"""The relay on a broker that refuses its records: nothing committed, nothing skipped."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource
from kafka.errors import KafkaError

from dev.services import unique_topic_prefix
from infra.bootstrap import Service
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from tests.integration.test_relay import (
    assert_exactly_once_in_order,
    fill,
    read_committed,
    stored_envelopes,
)


def set_max_message_bytes(bootstrap: str, topics: Topics, topic: str, size: int) -> None:
    """alter_configs replaces the topic's settings: the contract's are given again with it."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                config = {**topics.configs()[topic], "max.message.bytes": str(size)}
                admin.alter_configs([ConfigResource("TOPIC", topic, configs=config)])
                return
            except ValueError:  # a topic just created may not be described yet
                assert time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        admin.close()


def test_r3_records_the_broker_refuses_are_never_committed_and_published_once_accepted(
    service: Service, kafka_bootstrap: str
) -> None:
    topics = Topics(unique_topic_prefix())
    ensure_topics(kafka_bootstrap, topics, 2)
    fill(service.app, 20)
    expected = stored_envelopes(service.app)
    # Every envelope (~600 B) is over the limit: each record of a transaction fails.
    set_max_message_bytes(kafka_bootstrap, topics, topics.events, 200)
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}r",
                  batch_size=10)
    try:
        with pytest.raises(KafkaError):
            relay.drain()  # a one-shot run gives up after its retries, and says so
        assert relay.position == 0, "a transaction with refused records was committed"
        assert read_committed(kafka_bootstrap, topics.events) == []
        set_max_message_bytes(kafka_bootstrap, topics, topics.events, 1_048_576)
        assert relay.drain() == len(expected)
    finally:
        relay.close()
    assert_exactly_once_in_order(read_committed(kafka_bootstrap, topics.events), expected)
