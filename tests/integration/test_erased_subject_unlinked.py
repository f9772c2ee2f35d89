"""P2/P5: after an erasure, no stable id of the person is left to link: the published erasure
event carries a one-off pseudonym and stream, and the views rotate the subject's pseudonym out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from application.commands import RedeemCard
from dev.services import unique_topic_prefix
from domain.errors import DomainError
from infra.bootstrap import Service
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from projections.runner import Projector
from projections.schema import VIEWS
from projections.sources import sync_store
from tests.store_ids import published as published_subject
from tests.unit.test_gdpr_privacy import act, busy_history

READ_TIMEOUT_S = 30.0


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[Topics]:
    made = Topics(unique_topic_prefix())
    created = ensure_topics(kafka_bootstrap, made, partitions=1)
    yield made
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics(created)
    admin.close()


def published(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every envelope on the topic, read to its end (transaction markers hold no record)."""
    partition = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             isolation_level="read_committed")
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while consumer.position(partition) < end:
        assert time.monotonic() < deadline, "topic not readable to its end"
        for records in consumer.poll(timeout_ms=500).values():
            found += [orjson.loads(r.value) for r in records if r.value]
    consumer.close()
    return found


def test_p2_p5_subject_erased_is_published_without_any_stable_id_of_the_person(
    service: Service, clock: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    h = busy_history(service, clock)
    act(service, "object", ["cust-alice"], "req-object")  # her subject stream's first event
    stable = {published_subject(service, i) for i in h.alice_ids}  # the erasure ends the link
    act(service, "erase", h.alice_ids, "req-erase")
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        relay.drain()
    finally:
        relay.close()

    records = published(kafka_bootstrap, topics.events)
    erased = [r for r in records if r["event_type"] == "SubjectErased"]
    others = [r for r in records if r["event_type"] != "SubjectErased"]
    assert len(erased) == len(h.alice_ids)
    named_elsewhere = {v for r in others for v in _ids_in(r)}
    assert stable & named_elsewhere  # her earlier events do name her (kept for the accounts)
    for record in erased:
        assert record["data"]["subject_id"] not in stable | named_elsewhere
        assert record["stream_id"] not in {r["stream_id"] for r in others}
    assert len({r["data"]["subject_id"] for r in erased}) == len(erased)


def _ids_in(record: dict[str, Any]) -> Iterator[str]:
    yield record["stream_id"]
    data = record["data"]
    for name in ("buyer_subject", "customer_id", "subject_id"):
        if data.get(name):
            yield data[name]
    if isinstance(data.get("pii"), dict) and data["pii"].get("recipient_subject"):
        yield data["pii"]["recipient_subject"]


def test_p2_views_rotate_an_erased_subjects_pseudonym_out_and_a_replay_agrees(
    service: Service, clock: Any
) -> None:
    h = busy_history(service, clock)
    for _ in range(4):  # enough unknown codes for an F1 alert naming her
        with pytest.raises(DomainError):  # refused, and recorded as an attempt
            service.app.redeem(RedeemCard(
                code="NOPE-NOPE-NOPE", market="FR", order_id="shop-alice-x", order_total=100,
                customer_id="cust-alice", source="test",
            ))
    views = Projector(service.db)
    sync_store(service.app, views)
    stable = [published_subject(service, i) for i in h.alice_ids]
    assert _where(views, stable), "the views should name her before the erasure"

    act(service, "erase", h.alice_ids, "req-erase")
    sync_store(service.app, views)
    assert _where(views, stable) == []
    rotated = _rows(views)

    views.reset()  # an auditor's replay from the store yields the same views
    sync_store(service.app, views)
    assert _rows(views) == rotated


def _rows(views: Projector) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: sorted(map(tuple, views.db.execute(f"SELECT * FROM {t.name}")), key=repr)
            for t in VIEWS}


def _where(views: Projector, needles: list[str]) -> list[str]:
    """The view tables and columns holding any of `needles`, in any text column."""
    found = []
    for table in VIEWS:
        for column, kind in table.columns.items():
            if kind != "TEXT":
                continue
            for needle in needles:
                hits = views.db.execute(
                    f"SELECT count(*) FROM {table.name} WHERE {column} LIKE ?",
                    (f"%{needle}%",))
                if hits[0][0]:
                    found.append(f"{table.name}.{column}")
    return sorted(set(found))
