"""`giftcards relay` SIGKILLed mid-run, restarted: every event on the topic exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from dev.services import unique_topic_prefix
from infra.bootstrap import Service
from infra.kafka.topics import Topics
from tests.integration.test_relay import (
    assert_exactly_once_in_order,
    fill,
    read_committed,
    stored_envelopes,
)

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
KILLS = 3


def relay(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    # Small batches: many transactions per run, so a kill lands inside or between them.
    return subprocess.Popen(
        [GIFTCARDS, "--json", "relay", "--batch-size", "5", *extra],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_first_commit(child: subprocess.Popen[bytes]) -> None:
    """Returns once the child logged a committed batch; its stderr keeps being drained."""
    committed = threading.Event()
    lines: list[bytes] = []

    def watch() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            lines.append(line)
            if b"relayed " in line:
                committed.set()

    threading.Thread(target=watch, daemon=True).start()
    assert committed.wait(60), b"the relay never committed a batch:\n" + b"".join(lines[-30:])


def kill_after_first_commit(child: subprocess.Popen[bytes], rng: random.Random) -> None:
    """SIGKILL at a random moment once the child has committed at least one batch."""
    wait_first_commit(child)
    threading.Event().wait(rng.uniform(0.0, 0.3))
    child.send_signal(signal.SIGKILL)
    child.wait(10)


def test_relay_sigkilled_mid_batch_publishes_every_event_exactly_once_in_order(
    service: Service, env_for: dict[str, str], kafka_bootstrap: str
) -> None:
    rng = random.Random(os.getpid())
    prefix = unique_topic_prefix()
    env = {
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": prefix,
        "GIFTCARDS_PARTITIONS": "3",
        # A killed relay's lease must lapse before the next one publishes: keep the wait short.
        "GIFTCARDS_RELAY_LEASE_SECONDS": "2",
    }
    fill(service.app, 900)
    expected = stored_envelopes(service.app)
    assert len(expected) >= 2000
    graceful = relay(env)
    wait_first_commit(graceful)
    graceful.send_signal(signal.SIGTERM)  # finishes its batch, closes, reports where it stopped
    assert graceful.wait(30) == 0
    assert graceful.stdout is not None
    assert orjson.loads(graceful.stdout.read())["stopped"] == "relay"
    for _ in range(KILLS):
        kill_after_first_commit(relay(env), rng)
    final = relay(env, "--once")
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err[-2000:]
    result = orjson.loads(out)
    assert 0 < result["published"] < len(expected), "the kills must land mid-run"
    records = read_committed(kafka_bootstrap, Topics(prefix).events)
    assert_exactly_once_in_order(records, expected)
    assert result["position"] >= expected[-1]["position"]
