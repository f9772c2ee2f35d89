"""The primary PostgreSQL of a Patroni cluster (synchronous replication) killed with SIGKILL
under checkout and HTTP load: Patroni promotes the synchronous standby, the service follows it
(multi-host URL), the old primary rejoins as a standby, and nothing is lost or done twice."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from application.apikeys import ApiKeys
from dev import patroni_dev
from dev.services import unique_topic_prefix
from infra.bootstrap import build
from infra.config import load_settings
from infra.db import Database
from infra.kafka.topics import Topics
from infra.replication import ReplicationRiskError, check_replication
from tests.conftest import SECRET
from tests.faults.harness import (
    ServiceProcess,
    assert_consistent,
    free_port,
    produce_checkout_load,
    purchase_codes,
)
from tests.integration.kafka_helpers import create_topics
from tests.integration.test_relay import read_committed, stored_envelopes

pytestmark = [pytest.mark.serial, pytest.mark.faults, pytest.mark.postgres, pytest.mark.kafka,
              pytest.mark.timeout(240)]

LOAD_S = 24.0  # the kill comes 8 s into the load
WAVE = 20  # checkout messages per wave, one wave every ~0.5 s
FAILOVER_BOUND_S = 30.0  # a new primary within this; the old one back as standby within 90 s


@pytest.fixture(scope="module")
def cluster() -> Iterator[patroni_dev.Cluster]:
    """Etcd and two PostgreSQL nodes under Patroni, synchronous mode, on free ports; its home
    under the system temp dir (the `postgres` OS user reaches it); all removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="gc-pat-", dir=tempfile.gettempdir()))
    home.chmod(0o755)
    c = patroni_dev.Cluster(home, patroni_dev.free_base())
    try:
        patroni_dev.start_cluster(c)
        yield c
    finally:
        patroni_dev.remove_cluster(c)
        shutil.rmtree(home, ignore_errors=True)


def test_the_cluster_url_reaches_the_primary_whose_commits_are_synchronously_replicated(
    cluster: patroni_dev.Cluster,
) -> None:
    primary = patroni_dev.leader(cluster)
    assert primary is not None
    db = Database(cluster.url)
    try:
        [(port, names)] = db.execute("SELECT current_setting('port')::int, "
                                     "current_setting('synchronous_standby_names')")
        assert port == cluster.pg_port(primary) and names
        check_replication(db, "synchronous", cluster.url)  # production accepts it
    finally:
        db.close()
    standby = Database(cluster.node_url(1 - primary))
    try:
        with pytest.raises(ReplicationRiskError) as refused:
            check_replication(standby, "synchronous", cluster.node_url(1 - primary))
        assert refused.value.code == "database_not_primary"
    finally:
        standby.close()


def test_the_dev_launcher_status_gives_the_url_and_who_leads(
    cluster: patroni_dev.Cluster, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATRONI_DEV_HOME", str(cluster.home))
    monkeypatch.setenv("PATRONI_DEV_PORT", str(cluster.base))
    assert patroni_dev.main(["status"]) == 0
    said = capsys.readouterr().out
    assert cluster.url in said and "leader running" in said and "sync_standby running" in said
    monkeypatch.setenv("PATRONI_DEV_PORT", str(patroni_dev.free_base()))
    assert patroni_dev.main(["status"]) == 3  # nothing there: stopped
    assert capsys.readouterr().out.strip() == "stopped"


class HttpPurchases:
    """Purchases over HTTP one after the other, as a shop would: a 503 or a lost connection is
    retried with the same order id (the natural key) after the Retry-After it was given."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.statuses: list[int] = []
        self.retry_after: list[str | None] = []  # of each 503
        self.done: dict[str, str] = {}  # order id -> card id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="http-purchases")

    def _run(self) -> None:
        auth = {"Authorization": f"Bearer {self.key}"}
        i = 0
        with httpx.Client(base_url=self.base, headers=auth, timeout=30) as client:
            while not self.stop.is_set():
                order_id = f"http-{i}"
                body = {"order_id": order_id, "market": "FR", "amount": 5000,
                        "payment_method": "card", "buyer_id": "shop",
                        "buyer_email": f"buyer-{i}@example.com"}
                try:
                    answer = client.post("/v1/cards", json=body)
                except httpx.TransportError:
                    time.sleep(0.5)
                    continue
                self.statuses.append(answer.status_code)
                if answer.status_code == 503:
                    self.retry_after.append(answer.headers.get("Retry-After"))
                    time.sleep(min(float(answer.headers.get("Retry-After") or 1), 2.0))
                    continue
                if answer.status_code in (200, 201):
                    self.done[order_id] = answer.json()["card_id"]
                    i += 1
                else:
                    return  # anything else is a failure of the test, seen in `statuses`


def test_r3_r11_primary_killed_under_load_fails_over_and_loses_nothing(
    cluster: patroni_dev.Cluster, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics)
    env = {
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_DATABASE_URL": cluster.url,
        "GIFTCARDS_SECRET_KEY": SECRET,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
    }
    codes = purchase_codes(env, 200)  # cards for the redemptions of the load
    service = build(load_settings(env))
    try:
        key = ApiKeys(service.app).create(name="shop", scopes=["orders"])["key"]
    finally:
        service.close()
    ids: Counter[str] = Counter()  # inputs per message id (exact resends included)
    loaded = threading.Event()

    def load() -> None:
        wave, started = 0, time.monotonic()
        while time.monotonic() - started < LOAD_S:
            mine = codes[wave * 4 : wave * 4 + 4]  # each code paid by one wave only
            ids.update(produce_checkout_load(kafka_bootstrap, topics, WAVE, seed=wave, codes=mine))
            wave += 1
            time.sleep(0.5)
        loaded.set()

    port = free_port()
    with ServiceProcess(["serve"], env, tmp_path / "serve.log") as serve, \
            ServiceProcess(["api", "--port", str(port)], env, tmp_path / "api.log") as api:
        api.wait_for_log("listening", timeout=90)
        shop = HttpPurchases(f"http://127.0.0.1:{port}", key)
        shop.thread.start()
        producer = threading.Thread(target=load, daemon=True)
        producer.start()
        serve.wait_for_log("checkout batch", timeout=90)
        time.sleep(5)
        handled_before, sold_before = serve.log_text().count("checkout batch"), len(shop.done)

        old = patroni_dev.leader(cluster)
        assert old is not None
        patroni_dev.kill_postgres(cluster, old)
        killed_at = time.monotonic()
        while (new := patroni_dev.leader(cluster)) in (None, old):
            assert time.monotonic() - killed_at < FAILOVER_BOUND_S, patroni_dev.members(cluster)
            time.sleep(0.2)
        promoted_s = time.monotonic() - killed_at
        sold_at_promotion = len(shop.done)
        # Writes go on: HTTP purchases succeed on the new primary.
        deadline = time.monotonic() + 60
        while len(shop.done) < sold_at_promotion + 3:
            assert time.monotonic() < deadline, (shop.statuses[-20:], api.log_tail())
            time.sleep(0.2)
        writes_back_s = time.monotonic() - killed_at
        patroni_dev.wait_healthy(cluster, timeout=90)  # the old primary streams again
        rejoined_s = time.monotonic() - killed_at

        producer.join(LOAD_S + 30)
        assert loaded.is_set(), "the load did not finish"
        shop.stop.set()
        shop.thread.join(60)
        assert_consistent(env, kafka_bootstrap, topics, message_ids=ids, settle_timeout=90)
        assert serve.alive(), f"serve exited ({serve.exit_code()}):\n{serve.log_tail()}"
        serve_log, api_log = serve.log_text(), api.log_text()
        assert serve.terminate() == 0, serve.log_tail()
        assert api.terminate() == 0, api.log_tail()

    print(f"failover: new primary after {promoted_s:.1f} s, HTTP writes back after "
          f"{writes_back_s:.1f} s, old primary streaming again after {rejoined_s:.1f} s")
    assert handled_before > 0 and sold_before > 0  # the kill hit a service at work
    members = {m["name"]: m for m in patroni_dev.members(cluster)}
    assert members[f"node{old}"]["role"] == "sync_standby", members
    assert members[f"node{old}"]["timeline"] == members[f"node{new}"]["timeline"] > 1, members

    # Every event on the topic is in the new primary's store (read from that node itself).
    on_topic = {r[3]["event_id"] for r in read_committed(kafka_bootstrap, topics.events)}
    direct = build(load_settings({**env, "GIFTCARDS_DATABASE_URL": cluster.node_url(new)}),
                   create_tables=False)
    try:
        envelopes = stored_envelopes(direct.app)
    finally:
        direct.close()
    stored = {e["event_id"] for e in envelopes}
    assert on_topic and on_topic <= stored, sorted(on_topic - stored)[:5]
    # Every card sold over HTTP is there, before the kill or after.
    assert set(shop.done.values()) <= {str(e["card_id"]) for e in envelopes}
    assert len(shop.done) > sold_at_promotion > 0

    # The failover reached every path as a wait, never as a failure: no dead letter, no 500,
    # no traceback; a 503 tells when to come back.
    assert set(shop.statuses) <= {200, 201, 503}, shop.statuses
    assert all(after is not None and 0 < int(after) <= 5 for after in shop.retry_after)
    dead = [r[3] for r in read_committed(kafka_bootstrap, topics.dead_letters)]
    assert dead == [], dead[:3]
    replies = [r[3] for r in read_committed(kafka_bootstrap, topics.results)]
    assert {r["status"] for r in replies} <= {"accepted", "rejected"}
    assert {r["status"] for r in replies if r["type"] == "GiftCardOrdered"} == {"accepted"}
    for log in (serve_log, api_log):
        assert "Traceback" not in log, log[-3000:]
