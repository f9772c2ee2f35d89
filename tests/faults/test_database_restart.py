"""Every PostgreSQL user survives a server restart: plain SQL (views, vault), the event store."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from consumers.checkout_processor import CheckoutProcessor, Outcome
from dev.services import drop_postgres_database, fresh_postgres_database
from infra import transient
from infra.bootstrap import build
from infra.config import load_settings
from infra.db import PING_IDLE_S, Database
from infra.secrets import Keys
from infra.transient import is_transient, retry_transient
from infra.vault import Vault
from tests.conftest import SECRET
from tests.faults.harness import GIFTCARDS, PrivatePostgres, free_port
from tests.integration.test_checkout_consumer import ordered

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
        assert second.code is not None
        assert app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="C1",
                            buyer_email="buyer@example.com", order_id="O-before").card_id \
            == first.card_id
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


@dataclass(frozen=True)
class Polled:
    """A consumed record as the processor reads it (offset and bytes)."""

    offset: int
    value: bytes


def test_r3_a_batch_waits_for_the_vault_and_nothing_is_dead_lettered(
    private_postgres: PrivatePostgres, postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loss once seen, exactly: the event store up, the vault's PostgreSQL away. Purchases with
    e-mails fail on the vault alone; the batch must wait (no tracking record written meanwhile,
    no dead letter) and then be applied whole, each purchase once."""
    store = fresh_postgres_database(postgres_server)
    env = {"GIFTCARDS_DATABASE_URL": store, "GIFTCARDS_SECRET_KEY": SECRET}
    service = build(load_settings(env))
    keys = Keys.from_master(service.settings.master_key)
    vault = Vault(Database(private_postgres.url), wrapping_key=keys.key_wrapping,
                  subject_key=keys.subject_hmac)
    service.app.vault = vault
    monkeypatch.setattr(transient, "MAX_DELAY_S", 0.5)
    processor = CheckoutProcessor(service.app, "order.checkout")
    records = [Polled(i, ordered(f"m-{i}", f"o-{i}")) for i in range(10)]
    try:
        private_postgres.stop()
        result: list[Outcome] = []
        worker = threading.Thread(target=lambda: result.append(processor.process(0, records)))
        worker.start()
        time.sleep(4)
        assert worker.is_alive(), "the batch did not wait for the vault"
        assert processor.next_offset(0) is None, "an offset was tracked while the vault was away"
        private_postgres.start()
        worker.join(60)
        [outcome] = result
        assert outcome.dead == []
        assert [r["status"] for _, r in outcome.results] == ["accepted"] * 10
        assert processor.next_offset(0) == 10
        again = processor.process(0, records)  # a redelivery: the same replies, nothing new
        assert [r for _, r in again.results] == [r for _, r in outcome.results]
    finally:
        vault.db.close()
        service.close()
        drop_postgres_database(store)


def test_api_lookups_answer_across_a_restart_and_never_fail_with_500(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """The API's lookups read kept rows on their own async pool: after a restart its
    stale connections fail once each and the lookups fall back to the full path (which retries,
    or says 503); never a 500, never a hang, and the lookups then answer again."""
    import httpx

    from application.apikeys import ApiKeys

    env = {**os.environ, "GIFTCARDS_DATABASE_URL": private_postgres.url,
           "GIFTCARDS_SECRET_KEY": SECRET, "GIFTCARDS_DATA_DIR": str(tmp_path / "var")}
    service = build(load_settings(env))
    key = ApiKeys(service.app).create(name="shop", scopes=["checkout"])["key"]
    code = service.app.purchase(market="FR", amount=5000, payment_method="card",
                                buyer_id="c", order_id="p-1").code
    service.close()
    port = free_port()
    log = tmp_path / "api.log"
    api = subprocess.Popen([GIFTCARDS, "api", "--port", str(port)], env=env,
                           stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/cards/lookup"
    auth = {"Authorization": f"Bearer {key}"}

    def lookup() -> httpx.Response:
        return httpx.post(url, headers=auth, json={"code": code, "market": "FR"}, timeout=20)

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if lookup().status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert lookup().json()["status"] == "active"
        private_postgres.restart()
        statuses = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses.append(lookup().status_code)
            if statuses[-3:] == [200, 200, 200]:
                break
            time.sleep(0.1)
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[-3:] == [200, 200, 200], statuses
    finally:
        api.terminate()
        api.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text and code not in text and key not in text
