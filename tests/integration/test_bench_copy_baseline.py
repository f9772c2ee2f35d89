"""The rebuild's baseline (c') copies every envelope of a topic into PostgreSQL, once each."""

from __future__ import annotations

import psycopg
from kafka import KafkaProducer

from bench.copy_consumer import TABLE, copy_consume
from dev.services import drop_postgres_database, fresh_postgres_database, unique_topic_prefix
from infra.kafka.admin import ensure_topics
from infra.kafka.topics import Topics


def test_copy_baseline_stores_every_committed_envelope_with_its_position(
    kafka_bootstrap: str, postgres_server: str
) -> None:
    topics = Topics(f"copy-{unique_topic_prefix()}")
    ensure_topics(kafka_bootstrap, topics, 3, 1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(250):
        producer.send(topics.events, key=str(i % 7).encode(),
                      value=b'{"event_id": "%d", "data": {"note": "tab\\there"}}' % i)
    producer.flush()
    producer.close()
    url = fresh_postgres_database(postgres_server)
    try:
        copied, seconds = copy_consume(kafka_bootstrap, topics.events, url)
        assert copied == 250 and seconds > 0
        with psycopg.connect(url) as conn:
            ids = [row[0] for row in conn.execute(f"SELECT envelope->>'event_id' FROM {TABLE}")]
            note = conn.execute(f"SELECT envelope->'data'->>'note' FROM {TABLE} LIMIT 1")
            assert note.fetchone() == ("tab\there",)
        assert sorted(map(int, ids)) == list(range(250))
    finally:
        drop_postgres_database(url)
