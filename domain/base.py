"""Pydantic base classes for aggregates and their events (the library's aggregate8 pattern)."""

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


class Aggregate(BaseAggregate[UUID]):
    """Declarative aggregate whose `@event` methods create pydantic events."""

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        pass

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str
