"""Given/When/Then on an aggregate itself: events in, one command, events out (or a refusal)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.base import Aggregate, DomainEvent
from domain.errors import DomainError

E = TypeVar("E", bound=DomainEvent)
STREAM = UUID(int=1)
RECORDED = datetime(2000, 1, 1, tzinfo=UTC)  # store time: never compared (the library stamps it)
# Chain hashes cover the wall-clock timestamp: checked in tests/unit/test_chain.py instead.
UNCOMPARED = {"timestamp", "originator_version", "prev_hash", "event_hash"}


def made(cls: type[E], aggregate: type[Aggregate] | None = None, **fields: Any) -> E:
    """An event of `cls` on STREAM (or `originator_id`); `aggregate` for a creation event.
    Versions are numbered by `given` and checked by `then`."""
    fields.setdefault("originator_id", STREAM)
    if aggregate is not None:
        fields["originator_topic"] = get_topic(aggregate)
    return cls(originator_version=0, timestamp=RECORDED, **fields)


@dataclass
class Scenario:
    aggregate: Any
    version: int
    result: Any = None
    refusal: DomainError | None = None

    def when(self, command: Callable[[Any], Any]) -> Scenario:
        """Run one command on the aggregate (None if no events were given)."""
        try:
            self.result = command(self.aggregate)
        except DomainError as refusal:
            self.refusal = refusal
        return self

    def then(self, *expected: DomainEvent) -> Any:
        """Exactly these events, in order, from the aggregate (or from the one the command
        created); returns that aggregate."""
        assert self.refusal is None, f"refused {self.refusal.code}: {self.refusal.message}"
        created = isinstance(self.result, Aggregate) and self.result is not self.aggregate
        changed = self.result if created else self.aggregate
        out = changed.collect_events()
        first = 1 if created else self.version + 1
        assert [e.originator_version for e in out] == list(range(first, first + len(out)))
        if created:  # a new aggregate's id is drawn at random
            expected = tuple(e.model_copy(update={"originator_id": changed.id}) for e in expected)
        assert [type(e) for e in out] == [type(e) for e in expected]
        assert [e.model_dump(exclude=UNCOMPARED) for e in out] == [
            e.model_dump(exclude=UNCOMPARED) for e in expected
        ]
        return changed

    def then_refused(self, code: str) -> None:
        """Refused with this stable code, and nothing recorded."""
        assert self.refusal is not None, f"not refused, returned {self.result!r}"
        assert self.refusal.code == code, self.refusal.message
        assert self.aggregate is None or not self.aggregate.collect_events()

    def then_returns(self, value: Any) -> None:
        """A query or a no-op: this result and no events."""
        assert self.refusal is None, f"refused {self.refusal.code}: {self.refusal.message}"
        assert self.result == value
        assert self.aggregate is None or not self.aggregate.collect_events()


def given(*events: Any) -> Scenario:
    """The aggregate these events make, numbered 1, 2, ... as the store would."""
    aggregate: Any = None
    for version, event in enumerate(events, 1):
        aggregate = event.model_copy(update={"originator_version": version}).mutate(aggregate)
    return Scenario(aggregate, len(events))
