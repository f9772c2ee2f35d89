"""Two `giftcards serve` processes sharing one data directory and store while cards are bought:
one signs checkpoints, the other stands by and takes over when the signer is killed; the
directory holds one chain, and `audit verify --all` finds nothing wrong."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from application.commands import PurchaseCard
from dev.services import unique_topic_prefix
from infra import checkpoints as cps
from infra.bootstrap import Service
from infra.chains import all_chains

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def buy_for(service: Service, seconds: float, start: int) -> int:
    """Buys a card every 0.1 s for `seconds`; returns the next order number."""
    until, n = time.monotonic() + seconds, start
    while time.monotonic() < until:
        service.app.purchase(PurchaseCard(
            market="FR", amount=2000, payment_method="card", buyer_id=f"b{n}", order_id=f"P-{n}",
        ))
        n += 1
        time.sleep(0.1)
    return n


def last_card_position(service: Service) -> int:
    """Where the store's last card event stands. Increments sign cards' heads: events of other
    streams after it (a code delivery that failed) wait for the next full checkpoint."""
    recorder = service.app.recorder
    upto = recorder.max_notification_id() or 0
    return max((at for at, _ in all_chains(recorder, service.app.mapper, upto)), default=0)


def signer_pid(env: dict[str, str], serves: list[subprocess.Popen[bytes]], logs: list[Path]
               ) -> int:
    """The pid of the serve that signs checkpoints, as `giftcards status` names it
    (host:pid:random)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = subprocess.run([GIFTCARDS, "--json", "status"], env=env, capture_output=True,
                               timeout=60, check=False)
        signer = orjson.loads(shown.stdout).get("checkpoints", {}).get("signing_instance")
        if signer is not None:
            return int(signer.split(":")[1])
        assert all(s.poll() is None for s in serves), logs[0].read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError("no serve took the checkpoint lease:\n" + logs[0].read_text()[-3000:])


def test_two_serves_sharing_a_directory_sign_one_checkpoint_chain_across_a_takeover(
    service: Service, env_for: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": unique_topic_prefix(),
        "GIFTCARDS_PARTITIONS": "2",
        "GIFTCARDS_CHECKPOINT_INCREMENT_SECONDS": "0.5",
        # No full checkpoint to prune them: every increment stays in the directory's chain.
        "GIFTCARDS_CHECKPOINT_EVERY_EVENTS": "1000000",
        # A killed signer's lease lapses within seconds: the takeover happens in the test.
        "GIFTCARDS_RELAY_LEASE_SECONDS": "2",
    }
    logs = [tmp_path / f"serve-{i}.log" for i in range(2)]
    serves = []
    for log in logs:
        with log.open("wb") as out:
            serves.append(subprocess.Popen(
                [GIFTCARDS, "serve", "--without-projections", "--without-api"],
                env=env, stdout=out, stderr=out))
    directory = service.settings.checkpoint_dir
    try:
        n = buy_for(service, 8, 0)
        pid = signer_pid(env, serves, logs)
        killed = next(s for s in serves if s.pid == pid)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        buy_for(service, 8, n)
        survivor = next(s for s in serves if s is not killed)
        stored = last_card_position(service)
        deadline = time.monotonic() + 30
        while cps.newest_position(directory) < stored and time.monotonic() < deadline:
            assert survivor.poll() is None, logs[serves.index(survivor)].read_text()[-3000:]
            time.sleep(0.2)
        assert cps.newest_position(directory) >= stored
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(60) == 0, logs[serves.index(survivor)].read_text()[-3000:]
    finally:
        for serve in serves:
            if serve.poll() is None:
                serve.kill()
                serve.wait(10)
    # The store, the views written beside it and the checkpoint directory (not the Kafka copy,
    # which the relays of these serves publish on their own time).
    quiet = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    audit = subprocess.run([GIFTCARDS, "--json", "audit", "verify", "--all"],
                           env={**quiet, **env_for}, capture_output=True, timeout=120,
                           check=False)
    report = orjson.loads(audit.stdout)
    assert "problems" in report, (report, audit.stderr[-2000:])
    assert audit.returncode == 0 and report["problems"] == [], report["problems"][:5]
    assert report["not_yet_checkpointed"] == 0 and report["cards"] >= 100
    assert len(cps.increment_paths(directory)) >= 10
    # Each instance signed in its turn: the first until it was killed, then the other.
    for log in logs:
        assert re.search(r"checkpoints: \S+ signs$", log.read_text(), re.M), log.read_text()[-3000:]
