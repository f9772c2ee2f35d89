"""Topic names and their explicit configurations, created by the service at start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Every topic of the contract; `prefix` isolates test runs and environments."""

    prefix: str = ""
    # Dead letters hold what an operator needs to fix a sender, for this long (P2).
    dead_letter_retention_days: int = 30

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
        """Per-topic configs: the event log is an audit log, never compacted nor expired."""
        forever = {"cleanup.policy": "delete", "retention.ms": "-1"}
        return {
            self.events: forever,
            self.checkout: {"cleanup.policy": "delete"},
            self.results: {"cleanup.policy": "delete"},
            self.dead_letters: {
                "cleanup.policy": "delete",
                "retention.ms": str(self.dead_letter_retention_days * 86_400_000),
                "max.message.bytes": "2097152",
            },
            self.relay_positions: {"cleanup.policy": "compact"},
            self.checkpoints: forever,
        }
