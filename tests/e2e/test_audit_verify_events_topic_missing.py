"""`audit verify --all` with Kafka configured but no events topic: a named problem, not a crash."""

from __future__ import annotations

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.e2e.test_cli import cli
from tests.integration.test_topic_contract import kafka_env

NOW = "2026-01-12T10:00:00Z"


def test_a_store_whose_events_topic_is_missing_is_named_as_a_problem(
    env_for: dict[str, str], kafka_bootstrap: str
) -> None:
    topics = Topics(unique_topic_prefix())  # never served: none of its topics exists
    env = kafka_env(env_for, kafka_bootstrap, topics)
    status, verified, err = cli(env, NOW, "audit", "verify", "--all")
    assert status == 0 and verified["ok"], (verified, err)  # nothing stored, nothing to compare
    status, _, err = cli(env, NOW, "purchase", "--market", "FR", "--amount", "50",
                         "--payment-method", "card", "--buyer-id", "C1")
    assert status == 0, err
    status, verified, err = cli(env, NOW, "audit", "verify", "--all")
    assert status == 1 and not verified["ok"], (verified, err)
    named = [p for p in verified["problems"] if p["card_id"] is None]
    assert len(named) == 1 and f"topic {topics.events} does not exist" in named[0]["problem"]
