"""The relay on the real broker: every published stored event once, in per-card order."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from application.cards import GiftCards
from dev.services import unique_topic_prefix
from domain.errors import DomainError
from infra.bootstrap import Service
from infra.envelope import published_topics, stored_envelope
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from tests.unit.rules_helpers import buy, pay

PARTITIONS = 3


def fill(app: GiftCards, cards: int, tag: str = "") -> None:
    """Cards bought, a third redeemed twice, and unknown codes tried, in group commits of 200."""
    for start in range(0, cards, 200):
        with app.batch() as uow:
            for i in range(start, min(cards, start + 200)):
                card = buy(app, buyer_id=f"b{i % 40}", amount=2000 + i, within=uow)
                if i % 3 == 0:
                    pay(app, card.code, f"o{tag}{i}", 700, customer_id=f"c{i % 7}", within=uow)
                    refused(pay, app, card.code, f"p{tag}{i}", 500, customer_id=f"c{i % 7}",
                            within=uow)
                if i % 50 == 0:
                    refused(pay, app, "NOPE-NOPE-NOPE-NOPE", f"u{tag}{i}", 500, customer_id=f"c{i}",
                            within=uow)


def refused(command: Any, *args: Any, **kwargs: Any) -> None:
    """A refusal that the store records as an event (RedemptionRefused, UnknownCodeTried)."""
    try:
        command(*args, **kwargs)
    except DomainError:
        return
    raise AssertionError("expected a refusal")


def stored_envelopes(app: GiftCards) -> list[dict[str, Any]]:
    """What the relay must publish: the envelope of every published event, in store order."""
    out: list[dict[str, Any]] = []
    start = 1
    while notifications := app.recorder.select_notifications(
        start, 1000, topics=published_topics()
    ):
        for n in notifications:
            envelope = stored_envelope(app.mapper, n, app.pseudonyms)
            if envelope is not None:
                out.append(envelope)
        start = notifications[-1].id + 1
    return out


def read_committed(bootstrap: str, topic: str) -> list[tuple[int, int, bytes, dict[str, Any]]]:
    """Every committed record of `topic` as (partition, offset, key, envelope)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        records = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records += [(tp.partition, r.offset, r.key, orjson.loads(r.value)) for r in batch]
        return records
    finally:
        consumer.close()


def assert_exactly_once_in_order(
    records: list[tuple[int, int, bytes, dict[str, Any]]], expected: list[dict[str, Any]]
) -> None:
    """Same events as the store, none twice; per stream the store's order; one partition per key."""
    ids = [r[3]["event_id"] for r in records]
    assert len(ids) == len(set(ids)), "an event is visible twice"
    assert sorted(ids) == sorted(e["event_id"] for e in expected), "lost or foreign events"
    by_partition: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    partition_of: dict[bytes, int] = {}
    for partition, offset, key, envelope in records:
        assert key == (envelope["card_id"] or envelope["stream_id"]).encode()
        assert partition_of.setdefault(key, partition) == partition, "a key on two partitions"
        by_partition[partition].append((offset, envelope))
    published: dict[str, list[int]] = defaultdict(list)
    for partition, rows in by_partition.items():
        rows.sort(key=lambda row: row[0])
        positions = [envelope["position"] for _, envelope in rows]
        assert positions == sorted(set(positions)), f"positions not increasing on {partition}"
        for _, envelope in rows:
            published[envelope["stream_id"]].append(envelope["card_version"])
    stored: dict[str, list[int]] = defaultdict(list)
    for envelope in expected:
        stored[envelope["stream_id"]].append(envelope["card_version"])
    assert published == stored
    cards = {e["card_id"] for e in expected if e["card_id"]}
    for card in cards:  # a card publishes every version from 1, without gaps
        assert stored[card] == list(range(1, len(stored[card]) + 1))


def test_relay_publishes_every_card_event_once_in_per_card_order(
    service: Service, kafka_bootstrap: str
) -> None:
    topics = Topics(unique_topic_prefix())
    ensure_topics(kafka_bootstrap, topics, PARTITIONS)
    fill(service.app, 120)
    expected = stored_envelopes(service.app)
    assert {e["event_type"] for e in expected} >= {
        "GiftCardPurchased",
        "GiftCardRedeemed",
        "GiftCardRedemptionRefused",
        "CheckoutUnknownCodeTried",
    }
    relay = Relay(
        service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}r", batch_size=50
    )
    try:
        assert relay.drain() == len(expected)
        assert relay.drain() == 0, "a rerun publishes nothing new"
    finally:
        relay.close()
    records = read_committed(kafka_bootstrap, topics.events)
    assert_exactly_once_in_order(records, expected)
    headers_seen = read_headers(kafka_bootstrap, topics.events)
    assert {"event_type", "schema_version", "content-type"} <= set(headers_seen)


def test_relay_restarted_resumes_from_kafka_position_and_publishes_only_new_events(
    service: Service, kafka_bootstrap: str
) -> None:
    topics = Topics(unique_topic_prefix())
    ensure_topics(kafka_bootstrap, topics, PARTITIONS)
    tid = f"{topics.prefix}r"
    fill(service.app, 30)
    first = Relay(service, kafka_bootstrap, topics, transactional_id=tid)
    published = first.drain()
    reached = first.position
    first.close()
    fill(service.app, 20, tag="second")
    expected = stored_envelopes(service.app)
    second = Relay(service, kafka_bootstrap, topics, transactional_id=tid)
    try:  # a new process knows nothing but what Kafka committed
        assert second.position == reached >= expected[published - 1]["position"]
        assert second.drain() == len(expected) - published
    finally:
        second.close()
    assert_exactly_once_in_order(read_committed(kafka_bootstrap, topics.events), expected)


def test_ensure_topics_is_idempotent_with_contract_configs(kafka_bootstrap: str) -> None:
    topics = Topics(unique_topic_prefix())
    assert sorted(ensure_topics(kafka_bootstrap, topics, PARTITIONS)) == sorted(topics.configs())
    assert ensure_topics(kafka_bootstrap, topics, PARTITIONS) == []
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert len(consumer.partitions_for_topic(topics.events) or ()) == PARTITIONS
        assert len(consumer.partitions_for_topic(topics.relay_positions) or ()) == 1
    finally:
        consumer.close()


def read_headers(bootstrap: str, topic: str) -> dict[str, bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", auto_offset_reset="earliest"
    )
    try:
        consumer.subscribe([topic])
        for _ in range(50):
            for batch in consumer.poll(timeout_ms=200).values():
                return {k: v for k, v in batch[0].headers}
        raise AssertionError("no record to read headers from")
    finally:
        consumer.close()
