"""A PostgreSQL of `max_connections=10`: one `serve` stays within its connection budget and
makes progress (replies, relayed events, e-mails); `giftcards api` starts on a small budget."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dev import pg_dev
from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.conftest import SECRET
from tests.faults.harness import (
    PrivatePostgres,
    ServiceProcess,
    assert_consistent,
    free_port,
    produce_checkout_load,
    purchase_codes,
)
from tests.integration.kafka_helpers import create_topics
from tests.integration.test_relay import read_committed

pytestmark = [pytest.mark.serial, pytest.mark.faults, pytest.mark.postgres, pytest.mark.kafka,
              pytest.mark.timeout(150)]

MAX_CONNECTIONS = 10
SERVE_BUDGET = 6  # GIFTCARDS_DB_POOL_SIZE: the rest is this test's own


@pytest.fixture
def small_postgres(private_postgres: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private server restarted with 10 connections, one kept for this test's own count."""
    with open(private_postgres.cluster.data_dir / "postgresql.conf", "a") as conf:
        conf.write(f"max_connections = {MAX_CONNECTIONS}\nsuperuser_reserved_connections = 1\n")
    private_postgres.restart()
    yield private_postgres


def connections(cluster: pg_dev.Cluster) -> int:
    """Client backends on the giftcards database (this check's own not counted)."""
    with psycopg.connect(
        host=str(cluster.socket_dir), port=cluster.port, user=pg_dev.SUPERUSER,
        dbname="postgres", autocommit=True,
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (cluster.url.rsplit("/", 1)[-1].split("?")[0],),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_serve_makes_progress_within_ten_connections(
    small_postgres: PrivatePostgres, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics)
    env = {
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_DATABASE_URL": small_postgres.url,
        "GIFTCARDS_SECRET_KEY": SECRET,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
        "GIFTCARDS_DB_POOL_SIZE": str(SERVE_BUDGET),
    }
    codes = purchase_codes(env, 10)
    with ServiceProcess(["serve"], env, tmp_path / "serve.log") as serve:
        ids = produce_checkout_load(kafka_bootstrap, topics, 40, seed=1, codes=codes)
        peak, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            peak = max(peak, connections(small_postgres.cluster))
            assert serve.alive(), serve.log_tail()
            replies = {r[3]["message_id"] for r in read_committed(kafka_bootstrap, topics.results)}
            if ids.keys() <= replies:
                break
            time.sleep(1.0)
        unanswered = ids.keys() - replies
        assert not unanswered, f"{len(unanswered)} of {len(ids)} unanswered:\n{serve.log_tail()}"
        assert peak <= SERVE_BUDGET, peak  # serve's own: this test held none while it counted
        assert_consistent(env, kafka_bootstrap, topics, message_ids=ids, settle_timeout=60)
        mail = tmp_path / "var" / "mail" / "new"
        deadline = time.monotonic() + 30
        while not (mail.is_dir() and any(mail.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert mail.is_dir() and any(mail.iterdir()), serve.log_tail()
        assert connections(small_postgres.cluster) <= SERVE_BUDGET
        assert serve.alive(), serve.log_tail()
        assert serve.terminate() == 0, serve.log_tail()
    assert "Traceback" not in serve.log_text(), serve.log_tail()


def test_api_waits_for_a_full_database_then_starts_on_a_small_budget(
    small_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    env = {
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_DATABASE_URL": small_postgres.url,
        "GIFTCARDS_SECRET_KEY": SECRET,
        "GIFTCARDS_DB_POOL_SIZE": "4",
    }
    # Every slot the giftcards role may use taken (one is kept for the count).
    hogs = [psycopg.connect(small_postgres.url) for _ in range(MAX_CONNECTIONS - 1)]
    port = free_port()
    try:
        with ServiceProcess(["api", "--port", str(port)], env, tmp_path / "api.log") as api:
            api.wait_for_log("waiting for the database schema", timeout=30)
            time.sleep(12)
            assert api.alive(), api.log_tail()  # waits, does not exit
            for hog in hogs:
                hog.close()
            api.wait_for_log("listening", timeout=60)
            time.sleep(2)
            assert api.alive(), api.log_tail()
            assert connections(small_postgres.cluster) <= 4
            # Said once per 10 s at most, not per attempt.
            assert api.log_text().count("waiting for the database schema") <= 3, api.log_tail()
            assert api.terminate() == 0, api.log_tail()
    finally:
        for hog in hogs:
            hog.close()
