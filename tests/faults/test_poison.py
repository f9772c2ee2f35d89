"""A poison message between two valid ones: answered, dead-lettered, and
`serve` keeps running (before the fix, deep JSON crash-looped it on the same offset)."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.faults.harness import ServiceProcess, assert_consistent
from tests.integration.kafka_helpers import TopicReader, create_topics, produce
from tests.integration.test_checkout_consumer import ordered

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

SPACED_CODE = "CM6DZC    YRUCQW    RUQZ6W"  # passed the old detector, yet redeems
# Finding 3: 255 levels broke orjson's serializer, 1,024 its parser, beyond that RecursionError.
POISONS = {
    "poison-deep-255": b'{"message_id": "poison-deep-255", "x": ' + b"[" * 255 + b"]" * 255 + b"}",
    "poison-deep-1024": b'{"message_id": "poison-deep-1024", "x": ' + b"[" * 1024,
    "poison-duplicate": b'{"amount": 99999999, ' + ordered("poison-duplicate", "o-dup")[1:],
    "poison-spaced-code": ordered("poison-spaced-code", SPACED_CODE),
}
REASONS = {
    "poison-deep-255": "too_deep",
    "poison-deep-1024": "too_deep",
    "poison-duplicate": "duplicate_key",
    "poison-spaced-code": "invalid_id",  # a code in the order id: not an id, and redacted
}


@pytest.mark.parametrize("backend", ["postgres"])
def test_r8_p5_poison_between_valid_messages_is_answered_dead_lettered_and_serve_stays_up(
    env_for: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics)
    env = {
        **env_for,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
    }
    inputs = [ordered("valid-before", "order-before"), *POISONS.values(),
              ordered("valid-after", "order-after")]
    ids = {"valid-before", "valid-after", *POISONS}
    results, dead = TopicReader(kafka_bootstrap, topics.results), TopicReader(
        kafka_bootstrap, topics.dead_letters)
    with ServiceProcess(["serve"], env, tmp_path / "serve.log") as serve:
        pid = serve.process.pid if serve.process else None
        # One key, one partition: the valid message after the poisons waits behind them.
        produce(kafka_bootstrap, topics.checkout, inputs, key=b"one-partition")
        replies = {r["message_id"]: r for r in results.until(len(ids), timeout=90)}
        letters = dead.until(len(POISONS), timeout=30)
        assert_consistent(env, kafka_bootstrap, topics, message_ids=ids)
        assert serve.alive() and serve.process is not None and serve.process.pid == pid
        log = serve.log_text()
        assert serve.terminate() == 0, serve.log_tail()
    results.close()
    dead.close()
    assert replies["valid-before"]["status"] == replies["valid-after"]["status"] == "accepted"
    for message_id, reason in REASONS.items():
        assert (replies[message_id]["status"], replies[message_id]["reason"]) == (
            "rejected", reason)
    assert sorted(letter["reason"] for letter in letters) == sorted(REASONS.values())
    assert all(letter["original_base64"] for letter in letters)  # redacted, not the fallback
    # No crash, no restart of a part, no traceback: the partition simply moved on.
    for sign in ("Traceback", "loop failed", "restart"):
        assert sign not in log, log[-3000:]
    blob = b"".join(results.raw + dead.raw)
    blob += b"".join(base64.b64decode(letter["original_base64"]) for letter in letters)
    for part in SPACED_CODE.split():
        assert part.encode() not in blob
    assert orjson.loads(results.raw[0])["message_id"] in ids
