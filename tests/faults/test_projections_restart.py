"""The projection loops (from the store, from Kafka) wait out a restart of their PostgreSQL and
end with views equal to a rebuild."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from application.commands import PurchaseCard
from dev.services import unique_topic_prefix
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.db import Database
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from projections.config import load_fraud_config
from projections.runner import Projector
from projections.sources import follow_kafka, follow_store
from tests.conftest import SECRET
from tests.faults.harness import PrivatePostgres, view_problems
from tests.integration.kafka_helpers import create_topics

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.timeout(150)]


def buy(service: Service, tag: str, n: int) -> None:
    for i in range(n):
        service.app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="b",
            buyer_email="b@example.com", order_id=f"{tag}-{i}",
        ))


@pytest.mark.parametrize("source", ["store", "kafka"])
def test_projections_wait_out_a_restart_of_their_database(
    private_postgres: PrivatePostgres,
    kafka_bootstrap: str,
    source: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {"GIFTCARDS_DATABASE_URL": private_postgres.url, "GIFTCARDS_SECRET_KEY": SECRET}
    service = build(load_settings(env))
    views = Projector(Database(private_postgres.url), load_fraud_config({}))
    topics = Topics(unique_topic_prefix())
    stop = threading.Event()

    def publish() -> None:
        relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}relay")
        try:
            relay.drain()
        finally:
            relay.close()

    loop: Callable[[], object]
    if source == "kafka":
        create_topics(kafka_bootstrap, topics)
        loop = lambda: follow_kafka(  # noqa: E731
            kafka_bootstrap, topics.events, f"{topics.prefix}views", views, stop=stop.is_set
        )
    else:
        loop = lambda: follow_store(service.app, views, stop=stop.is_set)  # noqa: E731
    try:
        buy(service, "before", 20)
        if source == "kafka":
            publish()
        private_postgres.stop()  # before the loop reads or applies anything
        worker = threading.Thread(target=loop, daemon=True)
        with caplog.at_level(logging.WARNING, logger="giftcards.db"):
            worker.start()
            time.sleep(6)
            assert worker.is_alive(), "the projection loop died with its database"
            private_postgres.start()
            buy(service, "after", 5)
            if source == "kafka":
                publish()
            deadline = time.monotonic() + 60
            while (problems := view_problems(service, env)) and time.monotonic() < deadline:
                time.sleep(1)
            assert problems == []
            assert worker.is_alive()
        stop.set()
        worker.join(30)
        assert not worker.is_alive(), "the loop did not stop"
        assert "projections waits for the database" in caplog.text
        assert "projections: database back" in caplog.text
    finally:
        stop.set()
        views.db.close()
        service.close()
