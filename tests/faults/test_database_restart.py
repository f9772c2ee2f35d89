"""Every PostgreSQL user survives a server restart: plain SQL (views, vault), the event store."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest

from infra import transient
from infra.bootstrap import build
from infra.config import load_settings
from infra.db import PING_IDLE_S, Database
from infra.transient import is_transient, retry_transient
from tests.conftest import SECRET
from tests.faults.harness import GIFTCARDS, PrivatePostgres, free_port

pytestmark = pytest.mark.postgres


def test_database_reconnects_and_a_lost_transaction_fails_whole(
    private_postgres: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(private_postgres.url)
    try:
        db.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO t (x) VALUES (?)", [1])

        # A restart while idle: the pool pings the connection and lends a new one.
        private_postgres.restart()
        time.sleep(PING_IDLE_S + 0.1)
        assert db.execute("SELECT x FROM t") == [(1,)]

        # The server goes away inside a transaction: it fails as a whole, transiently, and
        # nothing of it is applied.
        with pytest.raises(Exception) as lost, db.tx():
            db.execute("INSERT INTO t (x) VALUES (?)", [2])
            private_postgres.stop()
            db.execute("INSERT INTO t (x) VALUES (?)", [3])
        assert is_transient(lost.value), repr(lost.value)

        # While it is down, a statement fails transiently (no connection within the wait).
        with pytest.raises(Exception) as down:
            db.execute("SELECT 1")
        assert is_transient(down.value), repr(down.value)

        private_postgres.start()
        assert retry_transient(lambda: db.execute("SELECT x FROM t"), what="test") == [(1,)]

        # The whole transaction, retried while the server restarts, is applied exactly once.
        monkeypatch.setattr(transient, "MAX_DELAY_S", 0.5)
        outage = threading.Thread(target=lambda: (private_postgres.stop(), time.sleep(3),
                                                  private_postgres.start()))
        outage.start()
        time.sleep(0.5)

        def write() -> None:
            with db.tx():
                db.execute("INSERT INTO t (x) VALUES (?) ON CONFLICT DO NOTHING", [4])

        retry_transient(write, what="test")
        outage.join()
        assert db.execute("SELECT x FROM t ORDER BY x") == [(1,), (4,)]

        # Upserts stage rows in a temporary table, which the new connection did not have.
        db.execute("CREATE TABLE v (k TEXT PRIMARY KEY, n INTEGER)")
        db.upsert("v", ["k", "n"], ["k"], [("a", 1)])
        private_postgres.restart()
        time.sleep(PING_IDLE_S + 0.1)
        db.upsert("v", ["k", "n"], ["k"], [("a", 2), ("b", 1)])
        assert db.execute("SELECT k, n FROM v ORDER BY k") == [("a", 2), ("b", 1)]
    finally:
        db.close()


def test_vault_and_event_store_work_across_a_restart(private_postgres: PrivatePostgres) -> None:
    """Sealed personal data opens after the restart; purchases with e-mails (sealed in the
    vault, stored through the event store's own pool) work again without a new process."""
    env = {"GIFTCARDS_DATABASE_URL": private_postgres.url, "GIFTCARDS_SECRET_KEY": SECRET}
    service = build(load_settings(env))
    try:
        vault, app = service.vault, service.app
        token = vault.seal("s-1", "buyer@example.com")
        first = app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="C1",
                             buyer_email="buyer@example.com", order_id="O-before")
        private_postgres.restart()
        time.sleep(PING_IDLE_S + 0.1)
        assert vault.open("s-1", token) == "buyer@example.com"
        second = app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="C2",
                              buyer_email="other@example.com", order_id="O-after")
        assert second["code"] is not None
        assert app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="C1",
                            buyer_email="buyer@example.com", order_id="O-before")["card_id"] \
            == first["card_id"]
    finally:
        service.close()


def test_cli_says_the_database_is_unavailable_and_nothing_else(tmp_path: Path) -> None:
    """A command run while PostgreSQL is down exits 3 (a till retries it) with a clear error,
    no traceback."""
    url = f"postgresql://giftcards:giftcards@127.0.0.1:{free_port()}/giftcards"
    env = {**os.environ, "GIFTCARDS_DATABASE_URL": url, "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_DATA_DIR": str(tmp_path / "var")}
    done = subprocess.run(
        [GIFTCARDS, "--json", "purchase", "--market", "FR", "--amount", "50",
         "--payment-method", "card", "--buyer-id", "C1", "--buyer-email", "a@example.com"],
        env=env, capture_output=True, check=False, timeout=60,
    )
    assert done.returncode == 3
    assert orjson.loads(done.stdout)["error"]["code"] == "database_unavailable"
    assert b"Traceback" not in done.stderr
