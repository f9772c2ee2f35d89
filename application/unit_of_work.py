"""The unit of work: aggregates changed by one or more commands, saved in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Tracking

from domain.base import Aggregate
from domain.giftcard import GiftCard
from domain.ports import PersonalDataVault, StreamLoader
from domain.streams import Index

A = TypeVar("A", bound=Aggregate)


class Store(Protocol):
    """What a unit of work needs of the application that runs it (GiftCards)."""

    vault: PersonalDataVault
    load_streams: StreamLoader | None
    keeps_card_facts: bool

    @property
    def repository(self) -> Any: ...

    def record(self, processing: Any) -> Any: ...


class UnitOfWork:
    """Aggregates changed by one or more commands, saved together in one transaction."""

    def __init__(self, app: Store) -> None:
        self.app = app
        self.changed: dict[UUID, Aggregate] = {}
        self.loaded: dict[UUID, Aggregate] = {}
        self.absent: set[UUID] = set()
        # card id -> its code's index stream, for the cards whose code is registered here
        self.code_indexes: dict[UUID, UUID] = {}
        # The vault keys this unit reads and creates: committed with its events.
        self.keys = app.vault.session()

    def prefetch(self, ids: Iterable[UUID]) -> None:
        """Load many streams in one query: a batch reads its keys and cards once, not each."""
        # Membership tests, not `set - keys()`: that iterates over every stream loaded so
        # far, which made a batch's per-command prefetches quadratic in its size.
        changed, loaded, absent = self.changed, self.loaded, self.absent
        wanted = {i for i in ids if i not in changed and i not in loaded and i not in absent}
        if self.app.load_streams is None or not wanted:
            return
        found = self.app.load_streams(list(wanted))
        for stream, events in found.items():
            aggregate: Any = None
            for domain_event in events:
                aggregate = cast(Any, domain_event).mutate(aggregate)
            self.loaded[stream] = aggregate
        self.absent |= wanted - found.keys()

    def prefetch_targets(self) -> None:
        """Load what the indexes loaded so far point to (the cards of a batch's orders)."""
        self.prefetch(index.target for index in self.loaded.values() if isinstance(index, Index))

    def get(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        if aggregate_id in self.changed:
            return cast(A, self.changed[aggregate_id])
        if aggregate_id in self.absent:
            return None
        if aggregate_id in self.loaded:
            prefetched = self.loaded[aggregate_id]
            return prefetched if isinstance(prefetched, kind) else None
        try:
            found: object = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(found, kind):
            return None
        return found

    def add(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            self.changed[aggregate.id] = aggregate
            self.absent.discard(aggregate.id)

    def commit(self, tracking: Tracking | None = None) -> None:
        if not self.changed and tracking is None:
            return
        # ProcessingEvent + _record keep the tracking record in the same transaction.
        from eventsourcing.application import ProcessingEvent

        processing: ProcessingEvent[UUID] = ProcessingEvent(tracking)
        for aggregate in self.changed.values():
            # What collect_events() does, minus its runtime-Protocol isinstance checks, which
            # cost more than the rest of a batch commit's Python work.
            processing.events.extend(aggregate.collect_events())
            processing.aggregates[aggregate.id] = aggregate
        if self.app.keeps_card_facts:
            # The lookup rows of the changed cards, in the same transaction as their events.
            processing.saved_kwargs["card_facts"] = [
                (aggregate.facts(), aggregate.version, self.code_indexes.get(aggregate.id))
                for aggregate in self.changed.values()
                if isinstance(aggregate, GiftCard)
            ]
        processing.saved_kwargs.update(self.keys.before_commit())
        self.app.record(processing)
        self.keys = self.app.vault.session()
        self.changed.clear()
        self.code_indexes.clear()
