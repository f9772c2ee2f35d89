"""The relay under faults: a broker outage under load, and two relays on one topic prefix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.faults.harness import PrivateKafka, PurchaseLoop, ServiceProcess, assert_consistent
from tests.integration.kafka_helpers import create_topics

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]
OUTAGE_S = 30
WAIT_LOG_INTERVAL_S = 10


def kafka_env(env_for: dict[str, str], bootstrap: str, topics: Topics) -> dict[str, str]:
    return {
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
    }


def lines_with(text: str, *words: str) -> list[str]:
    return [line for line in text.splitlines() if all(w in line for w in words)]


@pytest.mark.parametrize("backend", ["sqlite"])
# A broker can lose a commit it confirmed across this restart and leave the batch's
# records on an events partition without a marker; the relay's abort after each init ends them
# as aborted, else its next commit there would publish them a second time (bench/relay_outage.py).
def test_r3_broker_down_30s_under_purchases_serve_relays_every_event_once_after_restart(
    private_kafka: PrivateKafka, env_for: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(private_kafka.bootstrap, topics, 2)
    env = kafka_env(env_for, private_kafka.bootstrap, topics)
    with ServiceProcess(["serve"], env, tmp_path / "serve.log") as serve:
        with PurchaseLoop(env, tag="outage") as till:
            serve.wait_for_log("relayed ", timeout=60)
            private_kafka.stop()
            before, mark = len(till.outcomes), len(serve.log_text())
            time.sleep(OUTAGE_S)
            during = len(till.outcomes) - before
            outage_log = serve.log_text()[mark:]
            private_kafka.start()
            resumed = len(serve.log_text())
            serve.wait_for_log("relayed ", timeout=60)  # any batch: then wait for the rest below
            time.sleep(3)  # purchases go on after the restart too
        assert serve.alive(), serve.log_tail()
        assert during > 0, "no purchase was stored while the broker was down"
        assert not till.unexpected, till.unexpected[:3]
        # Every event stored before, during and after the outage once on the topic, the views
        # (following the topic) equal to a rebuild from the store.
        try:
            assert_consistent(env, private_kafka.bootstrap, topics, message_ids=None,
                              settle_timeout=90)
        except AssertionError as failure:  # with the relay's own account (serve.log is lost)
            relay_log = "\n".join(lines_with(serve.log_text(), "giftcards.relay"))
            raise AssertionError(f"{failure}\nthe relay's log:\n{relay_log[:6000]}") from None
        assert "relayed " in serve.log_text()[resumed:]
        assert serve.terminate() == 0, serve.log_tail()
    waits = lines_with(outage_log, "giftcards.relay", "waiting")
    assert waits, "the relay never said what it waits for:\n" + outage_log[-3000:]
    assert len(waits) <= OUTAGE_S // WAIT_LOG_INTERVAL_S + 1, waits  # at most one per 10 s


@pytest.mark.serial  # the takeover is bounded in seconds: alone on the machine
@pytest.mark.parametrize("backend", ["sqlite"])
def test_r3_two_relays_on_one_prefix_one_active_the_other_takes_over_after_kill_9(
    kafka_bootstrap: str, env_for: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics, 2)
    lease = 3
    env = {**kafka_env(env_for, kafka_bootstrap, topics),
           "GIFTCARDS_RELAY_LEASE_SECONDS": str(lease)}
    relays = [
        ServiceProcess(["relay", "--batch-size", "20"], env, tmp_path / f"relay-{n}.log")
        for n in "ab"
    ]
    views = ServiceProcess(["project", "--source", "kafka"], env, tmp_path / "project.log")
    with relays[0], relays[1], views:
        with PurchaseLoop(env, tag="pair") as till:
            deadline = time.monotonic() + 60
            while not all(decided(r.log_text()) for r in relays):
                assert time.monotonic() < deadline, [r.log_tail() for r in relays]
                assert all(r.alive() for r in relays), [r.log_tail() for r in relays]
                time.sleep(0.2)
            time.sleep(10)  # a steady stream of purchases meanwhile
            logs = [r.log_text() for r in relays]
            active = [r for r, text in zip(relays, logs, strict=True)
                      if "is the active relay" in text]
            assert len(active) == 1, logs
            standby = next(r for r in relays if r is not active[0])
            assert "standing by" in standby.log_text()
            assert all(r.alive() for r in relays), logs
            assert not any(lines_with(text, "fenced") for text in logs), logs
            assert "relayed " in active[0].log_text() and "relayed " not in standby.log_text()
            killed, bought = time.monotonic(), len(till.succeeded)
            active[0].kill()
            standby.wait_for_log("is the active relay", timeout=6 * lease)
            takeover = time.monotonic() - killed
            standby.wait_for_log("relayed ", timeout=30)
            till.wait_for(bought + 2)  # purchases after the takeover, too
        assert bought >= 1 and not till.unexpected, till.outcomes[-3:]
        # The till has stopped; the survivor and the projections catch up.
        assert_consistent(env, kafka_bootstrap, topics, message_ids=None, settle_timeout=90)
        assert standby.alive() and views.alive()
        assert standby.terminate() == 0, standby.log_tail()
        assert views.terminate() == 0, views.log_tail()
    taken = lines_with(standby.log_text(), "is the active relay")
    assert len(taken) == 1, taken  # taken over once, never handed back and forth
    assert takeover < 2 * lease + 2, f"takeover took {takeover:.1f} s"


def decided(log: str) -> bool:
    """The relay has settled into a role: active or standing by."""
    return "is the active relay" in log or "standing by" in log
