"""Scale-out on a 3-broker cluster: two `serve` instances on one PostgreSQL share the
checkout and projection partitions, one relay active; a broker killed -9 under load and
restarted, then a `serve` instance killed while the other takes over its partitions and the
relay. Each ends with the common check (events once in per-card order, one reply per message,
no card redeemed twice, views = rebuild)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.faults.harness import (
    PrivateKafkaCluster,
    ServiceProcess,
    assert_consistent,
    our_tracebacks,
    produce_checkout_load,
    purchase_codes,
)
from tests.integration.kafka_helpers import create_topics

pytestmark = [pytest.mark.serial, pytest.mark.faults, pytest.mark.postgres, pytest.mark.kafka,
              pytest.mark.timeout(480)]
PARTITIONS = 4
LEASE_S = 3


class Load:
    """Waves of checkout messages (orders, payments with real codes, retries, duplicates) in a
    thread, acknowledged by all in-sync replicas; the message ids sent."""

    def __init__(self, bootstrap: str, topics: Topics, codes: list[str]) -> None:
        self.args = (bootstrap, topics)
        self.codes = codes
        self.ids: Counter[str] = Counter()  # inputs per message id
        self.waves = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="checkout-load")
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                mine = self.codes[self.waves * 4 : self.waves * 4 + 4]
                self.ids += produce_checkout_load(*self.args, 10, seed=self.waves, codes=mine)
                self.waves += 1
                self._stop.wait(0.3)
        except BaseException as exc:  # shown by the test, not lost in the thread
            self.error = exc

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        assert self.error is None, repr(self.error)


def cluster_env(
    env_for: dict[str, str], cluster: PrivateKafkaCluster, topics: Topics
) -> dict[str, str]:
    return {
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": str(PARTITIONS),
        "GIFTCARDS_REPLICATION_FACTOR": "3",
        "GIFTCARDS_RELAY_LEASE_SECONDS": str(LEASE_S),
    }


def serves(env: dict[str, str], tmp_path: Path) -> list[ServiceProcess]:
    return [ServiceProcess(["serve", "--instance-id", f"serve-{n}"], env,
                           tmp_path / f"serve-{n}.log") for n in "ab"]


def relay_role(log: str) -> str:
    """What the relay of a `serve` log says it is now: active or standing by."""
    marks = {"is the active relay": "active", "standing by": "standby"}
    last = max(((log.rfind(m), role) for m, role in marks.items()), default=(-1, "none"))
    return last[1] if last[0] >= 0 else "none"


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.parametrize("backend", ["postgres"])
def test_r3_r11_broker_killed_9_under_load_then_restarted_loses_nothing(
    private_kafka_cluster: PrivateKafkaCluster, env_for: dict[str, str], tmp_path: Path
) -> None:
    cluster = private_kafka_cluster
    topics = Topics(unique_topic_prefix())
    create_topics(cluster.bootstrap, topics, PARTITIONS, replication_factor=3)
    env = cluster_env(env_for, cluster, topics)
    codes = purchase_codes(env, 200)
    a, b = serves(env, tmp_path)
    with a, b:
        with Load(cluster.bootstrap, topics, codes) as load:
            a.wait_for_log("checkout batch", timeout=90)
            time.sleep(3)
            leader = cluster.leader_of(topics.events)
            cluster.kill(leader)  # the leader of giftcard.events partition 0, mid-transaction
            killed_at = load.waves
            # Two brokers of three: once its partitions have new leaders (the broker session,
            # 4 s), every topic keeps min.insync.replicas 2 and the load goes on.
            time.sleep(15)
            assert load.waves > killed_at + 3, "the load stopped while a broker was down"
            cluster.start_node(leader)
            time.sleep(5)
        assert a.alive() and b.alive(), (a.log_tail(), b.log_tail())
        assert_consistent(env, cluster.bootstrap, topics, message_ids=load.ids,
                          settle_timeout=90)
        assert a.terminate() == 0, a.log_tail()
        assert b.terminate() == 0, b.log_tail()
    logs = a.log_text() + b.log_text()
    assert our_tracebacks(logs) == [], logs[-3000:]
    assert "fenced by another relay" not in logs, logs[-3000:]


@pytest.mark.parametrize("backend", ["postgres"])
def test_r3_r11_serve_killed_9_the_other_takes_its_partitions_and_the_relay(
    private_kafka_cluster: PrivateKafkaCluster, env_for: dict[str, str], tmp_path: Path
) -> None:
    cluster = private_kafka_cluster
    topics = Topics(unique_topic_prefix())
    create_topics(cluster.bootstrap, topics, PARTITIONS, replication_factor=3)
    env = cluster_env(env_for, cluster, topics)
    codes = purchase_codes(env, 200)
    pair = serves(env, tmp_path)
    with pair[0], pair[1]:
        with Load(cluster.bootstrap, topics, codes) as load:
            wait_until(lambda: any(relay_role(s.log_text()) == "active" for s in pair), 90,
                       "no relay became active")
            # Both instances handle checkout batches: the group split the partitions.
            wait_until(lambda: all("checkout batch" in s.log_text() for s in pair), 90,
                       f"the partitions were not shared: {[s.log_tail() for s in pair]}")
            time.sleep(5)  # a steady state: one active relay, the other standing by
            roles = [relay_role(s.log_text()) for s in pair]
            assert sorted(roles) == ["active", "standby"], [s.log_tail() for s in pair]
            active, other = pair if roles[0] == "active" else pair[::-1]
            fenced = sum(s.log_text().count("fenced by another relay") for s in pair)
            assert fenced == 0, [s.log_tail() for s in pair]  # no relay fenced the other
            active.kill()
            killed = time.monotonic()
            other.wait_for_log("is the active relay", timeout=4 * LEASE_S + 10)
            takeover = time.monotonic() - killed
            mark = len(other.log_text())
            time.sleep(15)  # past the dead member's session (10 s): partitions reassigned
        assert other.alive(), other.log_tail()
        assert_consistent(env, cluster.bootstrap, topics, message_ids=load.ids,
                          settle_timeout=90)
        after = other.log_text()[mark:]
        assert "relayed " in after and "checkout batch" in after, after[-3000:]
        assert other.terminate() == 0, other.log_tail()
    assert takeover < 2 * LEASE_S + 5, f"relay takeover took {takeover:.1f} s"
