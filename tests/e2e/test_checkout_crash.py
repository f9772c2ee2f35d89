"""SIGKILL the real `giftcards consume checkout` mid-batch, restart: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer, TopicPartition

from application.card_base import PURCHASE_ORDER
from application.commands import PurchaseCard
from dev.services import unique_topic_prefix
from domain.giftcard import GiftCard
from domain.streams import stream_id
from infra.bootstrap import Service
from infra.kafka.topics import Topics
from tests.integration.kafka_helpers import PARTITIONS, TopicReader, create_topics, produce
from tests.integration.test_checkout_consumer import completed, ordered

PURCHASES, REDEMPTIONS, KILLS = 1500, 500, 3
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [GIFTCARDS, "consume", "checkout", "--max-poll-records", "200", "--instance-id", "c1"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stored_redemptions(service: Service) -> Counter[str]:
    topic = get_topic(GiftCard.Redeemed)
    notes = service.app.recorder.select_notifications(1, 100_000, topics=[topic])
    return Counter(orjson.loads(n.state)["order_id"] for n in notes)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_r3_r11_consumer_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    service: Service, env_for: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics)
    env = {
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": str(PARTITIONS),
        "GIFTCARDS_NOW": "2026-01-12T10:00:00Z",  # the fixture clock: the cards below are valid
    }
    codes = [
        service.app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="c", order_id=f"app-{i}",
        )).code
        for i in range(REDEMPTIONS)
    ]
    inputs = [ordered(f"buy-{i}", f"order-{i}") for i in range(PURCHASES)]
    inputs += [completed(f"pay-{i}", f"shop-{i}", code) for i, code in enumerate(codes)]
    # The order service retried some checkouts with a new message id: still one redemption.
    inputs += [completed(f"retry-{i}", f"shop-{i}", codes[i]) for i in range(0, REDEMPTIONS, 10)]
    produce(kafka_bootstrap, topics.checkout, inputs)
    expected_ids = {orjson.loads(raw)["message_id"] for raw in inputs}

    results = TopicReader(kafka_bootstrap, topics.results)
    log = tmp_path / "consumer.log"
    for kill in range(KILLS):
        process = start(env, log)
        # Let it get into the stream, then kill it wherever it is (mid-batch, mid-publish...).
        target = (kill + 1) * len(inputs) // (KILLS + 2)
        deadline = time.monotonic() + 60
        while len(results.raw) < target and time.monotonic() < deadline:
            results.poll(timeout_ms=20)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    process = start(env, log)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            results.poll()
            if expected_ids <= {orjson.loads(raw)["message_id"] for raw in results.raw}:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    replies = [orjson.loads(raw) for raw in results.raw]
    results.close()

    by_message: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for reply in replies:
        by_message[reply["message_id"]].append(reply)
    assert set(by_message) == expected_ids  # every input has a result
    for message_id, copies in by_message.items():
        assert all(copy == copies[0] for copy in copies), message_id  # duplicates are identical
    assert all(by_message[f"buy-{i}"][0]["status"] == "accepted" for i in range(PURCHASES))
    assert all(by_message[f"pay-{i}"][0]["status"] == "accepted" for i in range(REDEMPTIONS))
    app = service.app
    for i in range(PURCHASES):  # exactly one card per order (R3)
        index = app.repository.get(stream_id(PURCHASE_ORDER, f"order-{i}"))
        assert by_message[f"buy-{i}"][0]["card_id"] == str(index.target)
    purchased = get_topic(GiftCard.Purchased)
    cards = app.recorder.select_notifications(1, 100_000, topics=[purchased])
    assert len(cards) == PURCHASES + REDEMPTIONS
    redeemed = stored_redemptions(service)
    assert set(redeemed.values()) == {1} and len(redeemed) == REDEMPTIONS  # R11: never twice
    ends = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    partitions = [TopicPartition(topics.checkout, p) for p in range(PARTITIONS)]
    for tp, end in ends.end_offsets(partitions).items():
        assert app.recorder.max_tracking_id(f"{topics.checkout}#{tp.partition}") == end
    ends.close()
    assert log.read_text().count("checkout batch partitions=") >= KILLS
