"""`serve` under start-up faults: many at once on one fresh database, a broker down at start."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.faults.harness import PrivateKafka, ServiceProcess, assert_consistent, purchase_codes
from tests.faults.test_relay_faults import decided, kafka_env, lines_with

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]
AT_ONCE, ROUNDS = 5, 4
DOWN_S = 25
PARTS = ("relay", "checkout", "projections")


@pytest.mark.parametrize("backend", ["postgres"])
def test_serve_started_20_times_5_at_once_on_one_fresh_postgres_database_always_comes_up(
    kafka_bootstrap: str, env_for: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    env = kafka_env(env_for, kafka_bootstrap, topics)  # nothing created: the first round does
    for round_ in range(ROUNDS):
        batch = [
            ServiceProcess(["serve"], env, tmp_path / f"serve-{round_}-{n}.log")
            for n in range(AT_ONCE)
        ]
        for serve in batch:
            serve.start()
        try:
            deadline = time.monotonic() + 90
            while not all(decided(s.log_text()) for s in batch):
                dead = [s.log_tail() for s in batch if not s.alive()]
                assert not dead, f"round {round_}: a serve exited:\n{dead[0]}"
                assert time.monotonic() < deadline, [s.log_tail() for s in batch]
                time.sleep(0.2)
            codes = [serve.terminate() for serve in batch]
        finally:
            for serve in batch:
                serve.kill()
        assert codes == [0] * AT_ONCE, [s.log_tail() for s in batch]
        for serve in batch:
            text = serve.log_text()
            assert "tuple concurrently updated" not in text, text[-3000:]
            assert not lines_with(text, "waiting for the database schema"), text[-3000:]
            assert not lines_with(text, "restarting it in"), text[-3000:]
            # Ours only: kafka-python sometimes logs its own IO-loop race on shutdown (a task on
            # a socket it closed), which says nothing about the start.
            assert not lines_with(text, " ERROR giftcards"), text[-3000:]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_r3_serve_with_the_broker_down_at_start_stays_up_logs_its_waits_and_relays_once_up(
    private_kafka: PrivateKafka, env_for: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    env = kafka_env(env_for, private_kafka.bootstrap, topics)
    purchase_codes(env, 10, tag="before")  # stored while no broker is there
    private_kafka.stop()
    with ServiceProcess(["serve"], env, tmp_path / "serve.log") as serve:
        started = time.monotonic()
        for part in PARTS:  # each part fails at once and is restarted, the process stays up
            serve.wait_for_log(f" {part} failed", timeout=60)
        time.sleep(DOWN_S)
        assert serve.alive(), serve.log_tail()
        down_for, down_log = time.monotonic() - started, serve.log_text()
        private_kafka.start()
        serve.wait_for_log("relayed ", timeout=90)
        purchase_codes(env, 5, tag="after")
        assert_consistent(env, private_kafka.bootstrap, topics, message_ids=None,
                          settle_timeout=90)
        assert serve.terminate() == 0, serve.log_tail()
    restarts = lines_with(down_log, "restarting it in")
    for part in PARTS:
        mine = [line for line in restarts if f" {part} failed" in line]
        # At most one line per part and 10 s (the first at once) however often it restarted.
        assert 1 <= len(mine) <= down_for // 10 + 1, (part, down_for, mine)
    assert "similar lines held back" in down_log, "restarts more often than lines: some held"
