"""The fault-test harness itself: private services survive restarts, and the end check passes on
a healthy run and fails, naming the event, on a broken topic."""

from __future__ import annotations

from pathlib import Path

import orjson
import psycopg
import pytest
from kafka import KafkaProducer

from infra.bootstrap import Service
from infra.db import Database
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from projections.config import load_fraud_config
from projections.runner import Projector
from projections.sources import sync_store
from tests.faults.harness import (
    PrivateKafka,
    PrivatePostgres,
    ServiceProcess,
    assert_consistent,
    produce_checkout_load,
    purchase_codes,
)
from tests.integration.kafka_helpers import create_topics, produce
from tests.integration.test_relay import read_committed
from tests.services import unique_topic_prefix

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]


def test_private_broker_keeps_its_data_across_sigkill_and_restart(
    private_kafka: PrivateKafka,
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(private_kafka.bootstrap, topics)
    values = [f"record-{i}".encode() for i in range(50)]
    produce(private_kafka.bootstrap, topics.checkout, values)
    pid = private_kafka.pid
    private_kafka.kill()
    assert not private_kafka.alive()
    bootstrap = private_kafka.bootstrap
    private_kafka.start()
    assert private_kafka.pid != pid and private_kafka.bootstrap == bootstrap
    read = [record[3] for record in _raw(bootstrap, topics.checkout)]
    assert sorted(read) == sorted(values)


def _raw(bootstrap: str, topic: str) -> list[tuple[int, int, bytes, bytes]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert parts, f"{topic} is gone after the restart"
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        out = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                out += [(tp.partition, r.offset, r.key, r.value) for r in batch]
        return out
    finally:
        consumer.close()


def test_private_postgres_keeps_committed_rows_across_immediate_stop_and_restart(
    private_postgres: PrivatePostgres,
) -> None:
    with psycopg.connect(private_postgres.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int PRIMARY KEY)")
        conn.execute("INSERT INTO kept SELECT generate_series(1, 100)")
    url = private_postgres.url
    private_postgres.stop()
    assert not private_postgres.alive()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()
    private_postgres.start()
    with psycopg.connect(private_postgres.url) as conn:
        assert conn.execute("SELECT count(*), sum(n) FROM kept").fetchone() == (100, 5050)
    private_postgres.restart(kill=True)  # SIGKILL of the postmaster and its backends
    assert private_postgres.url == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (100,)


@pytest.mark.parametrize("backend", ["postgres"])
def test_r3_r11_serve_on_a_private_broker_ends_consistent(
    private_kafka: PrivateKafka, env_for: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(private_kafka.bootstrap, topics)
    env = {
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": private_kafka.bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
    }
    codes = purchase_codes(env, 60)
    ids = produce_checkout_load(private_kafka.bootstrap, topics, 300, seed=7, codes=codes)
    with ServiceProcess(["serve"], env, tmp_path / "serve.log") as serve:
        serve.wait_for_log("checkout batch", timeout=60)
        assert_consistent(env, private_kafka.bootstrap, topics, message_ids=ids)
        assert serve.terminate() == 0, serve.log_tail()
    assert "Traceback" not in serve.log_text(), serve.log_tail()
    replies = [r[3] for r in read_committed(private_kafka.bootstrap, topics.results)]
    statuses = {r["status"] for r in replies}
    assert statuses == {"accepted"}, statuses  # the load is all valid: a real happy path


def test_assert_consistent_fails_naming_an_event_published_twice(
    service: Service, env_for: dict[str, str], kafka_bootstrap: str
) -> None:
    topics = Topics(unique_topic_prefix())
    ensure_topics(kafka_bootstrap, topics, 2)
    cards = [
        service.app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="b",
                             order_id=f"buy-{i}")
        for i in range(5)
    ]
    service.app.redeem(code=cards[0]["code"], market="FR", order_id="shop-1", order_total=2000,
                       customer_id="c")
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        assert relay.drain() > 0
    finally:
        relay.close()
    views = Projector(Database(env_for["GIFTCARDS_DATABASE_URL"]), load_fraud_config({}))
    sync_store(service.app, views)
    views.db.close()
    assert_consistent(env_for, kafka_bootstrap, topics, message_ids=None, settle_timeout=0)

    partition, _, key, envelope = read_committed(kafka_bootstrap, topics.events)[-1]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topics.events, key=key, value=orjson.dumps(envelope), partition=partition)
    producer.flush()
    producer.close()
    with pytest.raises(AssertionError) as failure:
        assert_consistent(env_for, kafka_bootstrap, topics, message_ids=None, settle_timeout=0)
    message = str(failure.value)
    assert f"{envelope['stream_id']} v{envelope['card_version']}" in message
    assert "published 2 times" in message
