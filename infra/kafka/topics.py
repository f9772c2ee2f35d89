"""Topic names and their explicit configurations, created by the service at start."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import ConfigError, Settings

CHECKOUT_RETENTION_HOURS = 72
# Never deleted by time or size: what the topic's readers rebuild their state from.
FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
# Why a setting that differs can lose or duplicate, by setting (said in the refusal).
WHY = {
    "cleanup.policy": "compaction keeps one record per key and deletes the others",
    "retention.ms": "the broker deletes records older than this",
    "retention.bytes": "the broker deletes the oldest records beyond this size",
    "min.insync.replicas": "an acknowledged write may live on one broker only",
    "unclean.leader.election.enable": "an out-of-sync replica may become leader and drop writes",
    "max.message.bytes": "larger dead letters are refused",
}


class TopicContractError(ConfigError):
    """An existing topic differs from the contract in a way that can lose or duplicate records;
    the message names the topic, the setting, what it is and what it must be."""

    code = "topic_contract_violated"


@dataclass(frozen=True)
class Topics:
    """Every topic of the contract; `prefix` isolates test runs and environments."""

    prefix: str = ""
    # Dead letters hold what an operator needs to fix a sender, for this long (P2).
    dead_letter_retention_days: int = 30
    # `order.checkout` carries personal data in clear (names, e-mails, addresses, messages)
    # that erasure cannot reach: kept only long enough to ride out a weekend's consumer outage.
    checkout_retention_hours: int = CHECKOUT_RETENTION_HOURS

    @classmethod
    def of(cls, settings: Settings) -> Topics:
        """The topics of a deployment, with its retention settings."""
        return cls(settings.topic_prefix, settings.retention_dead_letter_days)

    @property
    def events(self) -> str:
        return f"{self.prefix}giftcard.events"

    @property
    def checkout(self) -> str:
        return f"{self.prefix}order.checkout"

    @property
    def results(self) -> str:
        return f"{self.prefix}giftcard.checkout-results"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}giftcard.dead-letters"

    @property
    def relay_positions(self) -> str:
        return f"{self.prefix}giftcard.relay-positions"

    @property
    def checkout_group(self) -> str:
        """The checkout consumers' group: its members split `order.checkout`'s partitions."""
        return f"{self.prefix}giftcards-checkout"

    @property
    def projections_group(self) -> str:
        """The Kafka-fed projections' group (`project --source kafka`, `serve`)."""
        return f"{self.prefix}giftcards-projections"

    @property
    def checkpoints(self) -> str:
        """Signed audit checkpoints: one partition, kept forever."""
        return f"{self.prefix}giftcard.checkpoints"

    @property
    def relay_transactional_id(self) -> str:
        """One relay per prefix: a second one fences the first instead of publishing twice."""
        return f"{self.prefix}giftcards-relay"

    def partition_counts(self, partitions: int) -> dict[str, int]:
        """Partitions per topic: the positions topic is a single compacted partition (one key,
        read to its end), the checkpoints one partition in signing order; the others have
        GIFTCARDS_PARTITIONS."""
        single = (self.relay_positions, self.checkpoints)
        return {name: 1 if name in single else partitions for name in self.configs()}

    def configs(self) -> dict[str, dict[str, str]]:
        """Per-topic configs: the event log is an audit log, never compacted nor expired; the
        positions topic keeps each relay's last position (compacted, never expired); the input
        topic keeps personal data for `checkout_retention_hours` only."""
        return {
            self.events: FOREVER,
            self.checkout: {
                "cleanup.policy": "delete",
                "retention.ms": str(self.checkout_retention_hours * 3_600_000),
            },
            self.results: {"cleanup.policy": "delete"},
            self.dead_letters: {
                "cleanup.policy": "delete",
                "retention.ms": str(self.dead_letter_retention_days * 86_400_000),
                "max.message.bytes": "2097152",
            },
            self.relay_positions: {
                "cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"
            },
            self.checkpoints: FOREVER,
        }
