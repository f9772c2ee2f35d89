"""`giftcards serve`: relay, checkout consumer and projections in one process; SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaAdminClient

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.e2e.test_http_api import free_port
from tests.integration.kafka_helpers import TopicReader, produce
from tests.integration.test_checkout_consumer import ordered

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
CARDS = 5


@pytest.mark.parametrize("backend", ["sqlite"])
def test_r4_serve_turns_orders_into_cards_events_and_views_then_stops_on_sigterm(
    env_for: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    env = {
        **os.environ,
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        port = free_port()  # the HTTP API runs beside the other parts
        serve = subprocess.Popen([GIFTCARDS, "serve", "--api-port", str(port)], env=env,
                                 stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        # The service creates its topics at start; wait until they exist before producing.
        while not set(topics.configs()) <= set(admin.list_topics()):
            assert time.monotonic() < deadline and serve.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        admin.close()
        produce(kafka_bootstrap, topics.checkout,
                [ordered(f"m-{i}", f"serve-order-{i}") for i in range(CARDS)])
        results = TopicReader(kafka_bootstrap, topics.results).until(CARDS)
        assert {r["status"] for r in results} == {"accepted"}
        # The parts start side by side: the API may listen a moment after the first results.
        assert api_ready(f"http://127.0.0.1:{port}/health/ready", deadline + 30) == {
            "status": "ready"}  # store and Kafka reachable
        events = TopicReader(kafka_bootstrap, topics.events).until(2 * CARDS)
        assert {e["event_type"] for e in events} >= {"GiftCardPurchased", "GiftCardActivated"}
        outstanding = 0
        while time.monotonic() < deadline + 60:
            shown = subprocess.run([GIFTCARDS, "--json", "liability"], env=env,
                                   capture_output=True, check=False)
            markets = orjson.loads(shown.stdout).get("markets", [])
            outstanding = sum(m["outstanding"] for m in markets)
            if outstanding == CARDS * 5000:
                break
            time.sleep(0.5)
        assert outstanding == CARDS * 5000  # the views followed the topic, not the store
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[max(0, text.find("Traceback") - 1500):][:4000]


def api_ready(url: str, until: float) -> object:
    """The API's readiness answer, once it listens (None if it never does before `until`)."""
    while time.monotonic() < until:
        try:
            return httpx.get(url, timeout=10).json()
        except httpx.TransportError:
            time.sleep(0.2)
    return None
