"""`giftcards status` on the real broker: relay lag before and after the relay ran, consumer lag
per partition, dead letters, the active relay (the operators' view)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from application.commands import PurchaseCard
from consumers import delivery
from infra.bootstrap import Service
from infra.envelope import published_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from tests.integration.kafka_helpers import produce

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def status(env: dict[str, str], bootstrap: str, topics: Topics) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [GIFTCARDS, "--json", "status"],
        env={**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "GIFTCARDS_TOPIC_PREFIX": topics.prefix},
        capture_output=True, check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return orjson.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_status_shows_relay_lag_until_relayed_then_the_active_relay_and_dead_letters(
    service: Service, env_for: dict[str, str], kafka_bootstrap: str, topics: Topics
) -> None:
    for n in range(3):
        service.app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="S", order_id=f"status-{n}",
        ))
    published = service.app.recorder.select_notifications(1, 100, topics=published_topics())
    before = status(env_for, kafka_bootstrap, topics)
    stored = before["relay"]["last_stored_position"]
    assert before["relay"] == {
        "last_stored_position": stored, "last_published_position": 0,
        "lag": len(published), "lag_at_least": False, "active_instance": None,
        "lease_expires_in_s": None, "stopped": None, "refused_link": None,
    }  # the cards' published events, not the private index events stored with them
    assert before["clock"]["within_bound"] is True and abs(before["clock"]["offset_s"]) < 2
    assert stored == published[-1].id and len(published) >= 3
    assert before["dead_letters"] == 0
    # The code-delivery outbox: every sealed code waits for the delivery worker, none has run here.
    sealed = service.app.recorder.select_notifications(1, 100, topics=delivery.TOPICS)
    assert before["deliveries_pending"] == len(sealed) == 3
    # Two checkout messages nobody consumed yet: lag 2 in all, per partition.
    produce(kafka_bootstrap, topics.checkout, [b"{}", b"{}"], key=b"k")
    checkout = before_checkout = status(env_for, kafka_bootstrap, topics)["consumers"]["checkout"]
    assert checkout["topic"] == topics.checkout and checkout["lag"] == 2
    assert sum(p["lag"] for p in checkout["partitions"]) == 2
    assert all(p["next"] == 0 for p in before_checkout["partitions"])

    # A lease that outlives a drain and a status process started on a busy machine.
    relay = Relay(service, kafka_bootstrap, topics,
                  transactional_id=topics.relay_transactional_id, lease_seconds=120)
    relay._hold_lease()  # as the running relay does first: it is the active one now
    assert relay.drain() > 0
    after = status(env_for, kafka_bootstrap, topics)
    assert after["relay"]["lag"] == 0
    assert after["relay"]["last_published_position"] == stored
    assert after["relay"]["active_instance"] == relay.instance
    relay.close()
    assert status(env_for, kafka_bootstrap, topics)["relay"]["active_instance"] is None
    produce(kafka_bootstrap, topics.dead_letters, [b'{"reason": "empty"}'])
    assert status(env_for, kafka_bootstrap, topics)["dead_letters"] == 1
