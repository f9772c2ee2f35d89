"""Pydantic base classes for aggregates and their explicit events (the library's aggregate8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    datetime_now_with_tzinfo,
)
from pydantic import BaseModel, ConfigDict, Field


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


class Aggregate(BaseAggregate[UUID]):
    """Declarative aggregate: explicit event classes, each applied by an `@event(Class)` method."""

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        pass

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str
