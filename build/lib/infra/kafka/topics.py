"""Topic names and their explicit configurations, created by the service at start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Every topic of the contract; `prefix` isolates test runs and environments."""

    prefix: str = ""

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
    def relay_transactional_id(self) -> str:
        """One relay per prefix: a second one fences the first instead of publishing twice."""
        return f"{self.prefix}giftcards-relay"

    def configs(self) -> dict[str, dict[str, str]]:
        """Per-topic configs: the event log is an audit log, never compacted nor expired."""
        forever = {"cleanup.policy": "delete", "retention.ms": "-1"}
        return {
            self.events: forever,
            self.checkout: {"cleanup.policy": "delete"},
            self.results: {"cleanup.policy": "delete"},
            self.dead_letters: {**forever, "max.message.bytes": "2097152"},
            self.relay_positions: {"cleanup.policy": "compact"},
        }
