"""Creates the contract topics with their explicit configs (idempotent); how often group members
refresh what they know of them."""

from __future__ import annotations

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from infra.kafka import clients
from infra.kafka.clients import Link
from infra.kafka.topics import Topics


def ensure_topics(
    bootstrap: Link,
    topics: Topics,
    partitions: int = 12,
    replication_factor: int = 1,
    *,
    bootstrap_timeout_ms: int = 30_000,
) -> list[str]:
    """Create the missing topics and return their names; existing topics are left as they are.
    Replicated (factor ≥ 3): a write needs two in-sync replicas and an out-of-sync replica is
    never elected leader, so an acknowledged event survives the loss of any one broker."""
    admin = clients.admin(
        bootstrap,
        client_id="giftcards-admin",
        bootstrap_timeout_ms=bootstrap_timeout_ms,
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            # The positions topic is a single compacted partition (Topics.partition_counts).
            NewTopic(
                name,
                topics.partition_counts(partitions)[name],
                replication_factor,
                topic_configs={**config, **replicated(replication_factor)},
            )
            for name, config in topics.configs().items()
            if name not in existing
        ]
        created = []
        for topic in wanted:
            try:  # one by one: a concurrent creator makes only its own topic fail
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


def replicated(replication_factor: int) -> dict[str, str]:
    """Per-topic settings of a replicated topic (also the broker defaults of `--brokers 3`)."""
    if replication_factor < 3:
        return {}
    return {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}


# How often a group member's client refreshes its metadata (kafka-python's default: 5 min). A
# member that joins its group before its client knows the topic gets — and, as the group's
# leader, hands out — no partition of it until that refresh; the leader then sees the topic and
# the group rebalances. On a 3-broker cluster a topic just created is learnt by the brokers one
# by one: one `serve` consumed nothing of `order.checkout` for minutes while the other took it
# all (seen in the cluster fault test). A refresh is one metadata request.
METADATA_MAX_AGE_MS = 10_000
