"""Pydantic base classes for aggregates and their explicit events (the library's aggregate8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID, uuid4

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    datetime_now_with_tzinfo,
)
from pydantic import BaseModel, ConfigDict, Field

from domain.chain import event_link


class DomainEvent(BaseModel):
    """An immutable, schema-described event; `timestamp` is when it was recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    originator_id: UUID
    originator_version: int
    timestamp: datetime = Field(default_factory=datetime_now_with_tzinfo)


class Fact(DomainEvent):
    """The fields every published event carries, lifted into the envelope: when it happened
    (`at`, business time, unlike `timestamp`), where, under which terms, on whose request."""

    at: datetime
    market: str | None
    currency: str | None
    terms_version: str
    correlation_id: str


class MarketFact(Fact):
    """A fact under one market's gift card terms: market and currency always known."""

    market: str
    currency: str


class Chained(DomainEvent):
    """An event in its aggregate's hash chain: `prev_hash` is its predecessor's
    `event_hash`, stamped by the aggregate that records it, in the same transaction. Events
    stored before the chain existed have neither (None); their links are computed on reading,
    so the first chained event after them covers them too."""

    prev_hash: str | None = None
    event_hash: str | None = None

    def mutate(self, aggregate: Any) -> Any:
        prev = getattr(aggregate, "_chain_head", None)
        mutated = super().mutate(aggregate)  # type: ignore[misc]
        # A stored chained event gives its hash; a new or pre-chain one is linked here.
        mutated._chain_head = self.event_hash or event_link(prev, self)
        return mutated


class Aggregate(BaseAggregate[UUID]):
    """Declarative aggregate: explicit event classes, each applied by an `@event(Class)` method.
    Chained events are stamped with their chain hashes as they are triggered."""

    @classmethod
    def _create(cls, *args: Any, **kwargs: Any) -> Self:
        aggregate = super()._create(*args, **kwargs)
        aggregate._stamp(None)
        return aggregate

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        prev = getattr(self, "_chain_head", None)
        super().trigger_event(event_class, **kwargs)
        self._stamp(prev)

    def _stamp(self, prev: str | None) -> None:
        """Replace the event just triggered by a copy carrying its chain hashes (the link was
        computed when it mutated this aggregate)."""
        pending = self._pending_events
        if pending and isinstance(pending[-1], Chained):
            pending[-1] = pending[-1].model_copy(
                update={"prev_hash": prev, "event_hash": self.__dict__["_chain_head"]}
            )

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        pass

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str
