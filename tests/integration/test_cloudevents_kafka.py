"""Consumers with other clients see the CloudEvents attributes of every record on the broker:
kcat (librdkafka) prints them with -J, the cloudevents SDK reads each record back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from jsonschema import Draft202012Validator
from kafka import KafkaConsumer, TopicPartition

from infra import asyncapi
from infra.bootstrap import Service
from infra.kafka.cloudevents import REQUIRED, event_type_name
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from infra.limits import erasure_as_published
from infra.schemas import BASE_ID
from tests.conftest import FixedClock
from tests.integration.kafka_helpers import TopicReader
from tests.integration.test_relay import stored_envelopes
from tests.unit.test_schemas import lifecycle

ROOT = Path(__file__).resolve().parents[2]
EVENT_HEADERS = {*REQUIRED, "ce_subject", "ce_time", "ce_dataschema"}
SOURCE = "https://giftcards.example.com"


@pytest.fixture
def backend() -> str:
    """Headers do not depend on the store: one backend keeps the test short."""
    return "sqlite"


def records(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of a topic, as kafka-python reads it."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        found: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                found += batch
        return found
    finally:
        consumer.close()


def kcat(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """docs/kafka.md's kcat command line ("Consume the stream") on this broker and topic, told to
    exit at the end (-e) quietly (-q); Debian's kcat, installed by `make kcat`."""
    subprocess.run(["make", "-s", "kcat"], cwd=ROOT, check=True, timeout=600)
    page = (ROOT / "docs" / "kafka.md").read_text(encoding="utf-8")
    (line,) = [line for line in page.splitlines() if line.startswith("kcat ")]
    names = {"localhost:9092": bootstrap, "giftcard.events": topic}
    command = [names.get(word, word) for word in line.split()]
    assert command != line.split() and "-J" in command
    done = subprocess.run(
        [*command, "-e", "-q"], capture_output=True, text=True, timeout=120, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_every_record_on_the_events_topic_carries_its_cloudevents_attributes(
    service: Service, clock: FixedClock, kafka_bootstrap: str, topics: Topics
) -> None:
    lifecycle(service, clock)
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        relay.drain()
    finally:
        relay.close()
    # As published: an erasure leaves naming no one (infra.limits).
    envelopes = {e["event_id"]: erasure_as_published(e, service.pseudonyms)
                 if e["event_type"] == "SubjectErased" else e
                 for e in stored_envelopes(service.app)}
    read = records(kafka_bootstrap, topics.events)
    assert len(read) == len(envelopes) and len({e["event_type"] for e in envelopes.values()}) >= 11
    doc = asyncapi.document()
    seen = set()
    for record in read:
        message = ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key,
                                        value=record.value)
        event = ce_kafka.from_binary(message, JSONFormat())
        envelope = envelopes[event.get_id()]
        seen.add(event.get_id())
        assert event.get_type() == event_type_name(
            "com.example.giftcard", envelope["event_type"], envelope["schema_version"]
        )
        market = envelope["market"]
        assert event.get_source() == (f"{SOURCE}/markets/{market}" if market else SOURCE)
        assert event.get_subject() == (envelope["card_id"] or envelope["stream_id"])
        assert event.get_subject() == record.key.decode()
        assert event.get_data() == envelope
        # ...and as the AsyncAPI document says the headers of that message are.
        name = f"{envelope['event_type']}.v{envelope['schema_version']}"
        schema = doc["components"]["messages"][name]["headers"]
        Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
            {k: v.decode() for k, v in record.headers}
        )
    assert seen == set(envelopes)
    # Another client, librdkafka's kcat, sees every ce_ header on every record.
    printed = kcat(kafka_bootstrap, topics.events)
    assert len(printed) == len(envelopes)
    for line in printed:
        pairs = line["headers"]
        headers = dict(zip(pairs[::2], pairs[1::2], strict=True))
        assert set(headers) >= EVENT_HEADERS
        assert headers["ce_specversion"] == "1.0"
        envelope = envelopes[headers["ce_id"]]
        assert json.loads(line["payload"]) == envelope
        subject = envelope["card_id"] or envelope["stream_id"]
        assert headers["ce_subject"] == line["key"] == subject
        assert headers["ce_time"] == envelope["occurred_at"]
    assert {json.loads(line["payload"])["event_id"] for line in printed} == set(envelopes)


def assert_cloudevents_outputs(results: TopicReader, dead: TopicReader) -> None:
    """Every checkout result and dead letter read back by the SDK: the result's id is its
    message id, the letter's its source record; the data is the record's value."""
    for reader, kind in ((results, "results"), (dead, "dead-letters")):
        assert reader.raw
        for key, value, headers in zip(reader.keys, reader.raw, reader.headers, strict=True):
            message = ce_kafka.KafkaMessage(headers=dict(headers), key=key, value=value)
            event = ce_kafka.from_binary(message, JSONFormat())
            data = event.get_data()
            assert event.get_source() == f"{SOURCE}/checkout/{kind}"
            assert event.get_subject() == (key.decode() if key else None)
            if kind == "results":
                assert event.get_id() == data["message_id"]
                assert event.get_type() == f"com.example.giftcard.checkout.{data['status']}.v1"
            else:
                where = data["source"]
                assert event.get_id() == f"{where['topic']}/{where['partition']}/{where['offset']}"
                # The consumer writes dead-letter schema v2, and says so in each letter.
                assert event.get_type() == "com.example.giftcard.checkout.dead_lettered.v2"
                assert event.get_dataschema() == f"{BASE_ID}dead-letter.v2.json"
