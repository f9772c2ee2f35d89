"""P2: erasure after a busy history, scanned in the real store and real topic."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from dev.services import unique_topic_prefix
from infra.bootstrap import Service
from infra.db import sqlite_path
from infra.envelope import stored_envelope
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from infra.vault_keys import ERASED
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import (
    ALICE_EMAIL,
    ALICE_MESSAGE,
    ALICE_NAME,
    BOB_MESSAGE,
    act,
    busy_history,
    export,
)

READ_TIMEOUT_S = 30.0
TEXT_TYPES = ("text", "bytea", "character varying", "json", "jsonb")


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[Topics]:
    # One partition, so that the whole topic is read back as one byte stream.
    made = Topics(unique_topic_prefix())
    created = ensure_topics(kafka_bootstrap, made, partitions=1)
    yield made
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics(created)
    admin.close()


@pytest.fixture
def events_topic(topics: Topics) -> str:
    return topics.events


def envelopes(service: Service, after: int = 0) -> list[dict[str, Any]]:
    app = service.app
    found = []
    for n in app.recorder.select_notifications(after + 1, 100_000):
        envelope = stored_envelope(app.mapper, n, app.pseudonyms)
        if envelope is not None:
            found.append(envelope)
    return found


def publish(service: Service, bootstrap: str, topics: Topics, expected: int) -> None:
    """The real relay puts the store's new events on the topic (exactly once)."""
    relay = Relay(service, bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        assert relay.drain() == expected
    finally:
        relay.close()


def topic_bytes(bootstrap: str, topic: str) -> bytes:
    """Every key, value and header of the topic, read to its end."""
    partition = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    chunks: list[bytes] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while consumer.position(partition) < end:
        assert time.monotonic() < deadline, "topic not readable to its end"
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                chunks += [r.key or b"", r.value or b""] + [v for _, v in r.headers]
    consumer.close()
    return b"\n".join(chunks)


def store_bytes(service: Service) -> bytes:
    """SQLite: the database files themselves; PostgreSQL: every text/bytea column of every table."""
    db = service.db
    if not db.is_postgres:
        path = sqlite_path(db.url)
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    columns = db.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type IN ('text', 'bytea', "
        "'character varying', 'json', 'jsonb')"
    )
    assert columns, "no PostgreSQL columns found to scan"
    chunks = []
    for table, column in columns:
        for (value,) in db.execute(f'SELECT "{column}"::bytea FROM "{table}"'):
            chunks.append(bytes(value) if value is not None else b"")
    return b"\n".join(chunks)


def money(service: Service, cards: list[str], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Card states, liability (open balances) and breakage (forfeited), to the cent."""
    states = [service.app.show(UUID(c)) for c in cards]
    breakage: Counter[str] = Counter()
    for e in items:
        if "forfeited" in e["data"]:
            breakage[e["currency"]] += e["data"]["forfeited"]
    liability = sum(s.balance for s in states if s.status == "active")
    return {"states": states, "liability": liability, "breakage": dict(breakage)}


def test_p2_p5_erasure_after_busy_history_leaves_no_clear_pii_or_code_anywhere(
    service: Service, clock: Any, kafka_bootstrap: str, topics: Topics, events_topic: str
) -> None:
    h = busy_history(service, clock)
    published = envelopes(service)
    publish(service, kafka_bootstrap, topics, len(published))
    secrets = [ALICE_EMAIL, ALICE_MESSAGE, ALICE_NAME, BOB_MESSAGE]
    codes = h.codes + [c.replace("-", "") for c in h.codes]

    stored, on_topic = store_bytes(service), topic_bytes(kafka_bootstrap, events_topic)
    # The scan does see the facts: the store keeps the order id, the topic its pseudonym...
    assert b"o-a1" in stored and service.pseudonyms.order("o-a1").encode() in on_topic
    for where in (stored, on_topic):
        for text in secrets + codes:  # ...and P5: only ciphertext of PII, never a code
            assert text.encode() not in where, text
    # P5/R21: no customer, subject or order id in clear on the topic.
    ids = [*h.alice_ids, *h.bob_ids, "cust-carol", "o-a1", "o-b1", "shop-bob-1", "shop-alice-1"]
    assert [i for i in ids if i.encode() in on_topic] == []
    doc = export(service, h.alice_ids)
    assert doc["cards_bought"][0]["message"] == ALICE_MESSAGE  # clear through the vault only
    before = money(service, h.cards, published)
    alice = [store_id(service, i) for i in h.alice_ids]  # the keys' subjects
    wrapped = [
        bytes(k)
        for (k,) in service.db.execute(
            "SELECT wrapped_key FROM subject_keys WHERE subject_id IN (?, ?)", alice
        )
    ]
    assert len(wrapped) == 2

    result = act(service, "erase", h.alice_ids, "req-erase-alice")
    assert result["keys_destroyed"] == 2
    added = envelopes(service, after=published[-1]["position"])
    publish(service, kafka_bootstrap, topics, len(added))

    assert [e["event_type"] for e in added] == ["SubjectErased", "SubjectErased"]
    assert envelopes(service)[: len(published)] == published  # every view rebuilds the same
    assert money(service, h.cards, envelopes(service)) == before
    stored, on_topic = store_bytes(service), topic_bytes(kafka_bootstrap, events_topic)
    for where in (stored, on_topic):
        for text in secrets + codes:
            assert text.encode() not in where, text
    assert [i for i in ids if i.encode() in on_topic] == []
    if not service.db.is_postgres:  # secure_delete + WAL truncation: the old key bytes are gone
        for key in wrapped:
            assert key not in stored
    # P2: her customer id no longer leads to her cards; found by the store id, unreadable.
    assert export(service, h.alice_ids)["cards_bought"] == []
    after = export(service, alice)
    bought, received = after["cards_bought"][0], after["cards_received"]
    assert bought["buyer_email"] == bought["buyer_name"] == bought["message"] == ERASED
    # P2: her e-mail no longer leads to the cards she received, and Bob's
    # message to her was sealed for both of them: unreadable now, from his side too.
    assert received == []
    bob_bought = export(service, h.bob_ids)["cards_bought"]
    assert {c["message"] for c in bob_bought} == {ERASED}
