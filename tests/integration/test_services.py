"""Checks that the real Kafka and PostgreSQL the integration suite relies on actually behave."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from dev.services import (
    drop_postgres_database,
    fresh_postgres_database,
    kafka_bootstrap,
    postgres_url,
    unique_topic_prefix,
)

READ_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return kafka_bootstrap()


@pytest.fixture(scope="module")
def admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    yield client
    client.close()


@pytest.fixture(scope="module")
def pg_url() -> str:
    return postgres_url()


def _read_to_end(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """Every value visible at isolation_level, read up to the partition's current end."""
    partition = TopicPartition(topic, 0)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        consumer.assign([partition])
        # For read_committed this is the last stable offset: open transactions are excluded.
        end = consumer.end_offsets([partition])[partition]
        values: list[bytes] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while consumer.position(partition) < end:
            assert time.monotonic() < deadline, (
                f"stuck at offset {consumer.position(partition)} of {end}"
            )
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(record.value for record in records)
        return values
    finally:
        consumer.close()


def test_kafka_broker_answers(admin: KafkaAdminClient) -> None:
    cluster = admin.describe_cluster()
    assert cluster["brokers"], cluster


def test_read_committed_sees_only_committed_transactions(
    bootstrap: str, admin: KafkaAdminClient
) -> None:
    prefix = unique_topic_prefix()
    topic = f"{prefix}txn"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{prefix}producer")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, b"committed-1")
        producer.send(topic, b"committed-2")
        producer.commit_transaction()

        producer.begin_transaction()
        producer.send(topic, b"aborted")
        # Flush first so the aborted record really lands in the log; otherwise the abort just
        # discards it client-side and the test would prove nothing about the broker.
        producer.flush()
        producer.abort_transaction()

        producer.begin_transaction()
        producer.send(topic, b"committed-3")
        producer.commit_transaction()
    finally:
        producer.close()

    committed = [b"committed-1", b"committed-2", b"committed-3"]
    assert _read_to_end(bootstrap, topic, "read_committed") == committed
    assert _read_to_end(bootstrap, topic, "read_uncommitted") == [
        b"committed-1",
        b"committed-2",
        b"aborted",
        b"committed-3",
    ]


def test_postgres_answers(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(version[0]) >= 150000


def test_fresh_postgres_database_is_empty_and_unique(pg_url: str) -> None:
    first = fresh_postgres_database(pg_url)
    second = fresh_postgres_database(pg_url)
    try:
        assert first != second
        with psycopg.connect(first) as conn:
            name = conn.execute("SELECT current_database()").fetchone()
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchone()
            conn.execute("CREATE TABLE probe (id int)")
        assert name is not None and urlsplit(first).path == f"/{name[0]}"
        assert tables == (0,)
        # Work in one fresh database must not leak into the next.
        with psycopg.connect(second) as conn:
            assert conn.execute("SELECT to_regclass('probe')").fetchone() == (None,)
    finally:
        drop_postgres_database(first)
        drop_postgres_database(second)
