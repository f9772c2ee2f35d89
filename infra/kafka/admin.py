"""Creates the contract topics with their explicit configs (idempotent) and refuses existing ones
that differ; how often group members refresh what they know of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from infra.kafka import clients
from infra.kafka.clients import Link
from infra.kafka.topics import WHY, TopicContractError, Topics


def ensure_topics(
    bootstrap: Link,
    topics: Topics,
    partitions: int = 12,
    replication_factor: int = 1,
    *,
    bootstrap_timeout_ms: int = 30_000,
) -> list[str]:
    """Create the missing topics and return their names; existing topics are checked against
    the contract (TopicContractError, naming each topic and setting that differs). Replicated
    (factor ≥ 3): a write needs two in-sync replicas and an out-of-sync replica is never elected
    leader, so an acknowledged event survives the loss of any one broker."""
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
        # Ours are created as the contract says (and a topic just created may not be known to
        # every broker yet): the others are checked.
        check_topics(admin, topics, [n for n in topics.configs() if n not in created],
                     replication_factor)
        return created
    finally:
        admin.close()


def verify_topics(
    bootstrap: Link,
    topics: Topics,
    names: Iterable[str],
    replication_factor: int = 1,
    *,
    bootstrap_timeout_ms: int = 30_000,
) -> None:
    """check_topics through an admin client of its own (the relay's check at each reconnect)."""
    admin = clients.admin(
        bootstrap, client_id="giftcards-admin", bootstrap_timeout_ms=bootstrap_timeout_ms
    )
    try:
        check_topics(admin, topics, list(names), replication_factor)
    finally:
        admin.close()


def check_topics(
    admin: KafkaAdminClient, topics: Topics, names: list[str], replication_factor: int
) -> None:
    """Raises TopicContractError listing every setting of `names` that differs from the
    contract: a topic compacted, expired or less replicated than the service needs."""
    if not names:
        return
    problems = []
    described = _configs(admin, names)
    unknown = [name for name in names if not described.get(name)]
    if unknown:  # just created by another process, not known to this broker yet: ask again
        raise KafkaTimeoutError(f"topics not described yet: {', '.join(unknown)}")
    for name, actual in described.items():
        wanted = {**topics.configs()[name], **replicated(replication_factor)}
        if actual.get("cleanup.policy") == wanted["cleanup.policy"] == "compact":
            # Retention does not apply to a compacted-only topic (earlier versions left the
            # positions topic at the broker's default): it deletes nothing there.
            wanted = {k: v for k, v in wanted.items() if not k.startswith("retention.")}
        for setting, value in wanted.items():
            if actual.get(setting) != value:
                problems.append(f"topic {name}: {setting} is {actual.get(setting)!r}, the "
                                f"contract needs {value!r} ({WHY.get(setting, 'contract')})")
    for topic in admin.describe_topics(names):
        replicas = min((len(p["replica_nodes"]) for p in topic["partitions"]), default=0)
        if topic["partitions"] and replicas < replication_factor:
            problems.append(f"topic {topic['name']}: replication factor is {replicas}, the "
                            f"contract needs {replication_factor} (GIFTCARDS_REPLICATION_FACTOR)")
    if problems:
        raise TopicContractError("; ".join(problems) + ". Fix or recreate the topic (see "
                                 "docs/operations.md, topic contract); nothing was started")


def _configs(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each topic's effective settings (its own or the broker's defaults), by name."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    described = admin.describe_configs(resources, config_filter="all")
    by_name: dict[str, dict[str, Any]] = {}
    for per_type in described.values():
        for name, entries in per_type.items():
            by_name[name] = {key: entry["value"] for key, entry in entries.items()}
    return by_name


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
