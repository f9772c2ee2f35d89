"""What the domain needs from the outside world, passed in by the composition root."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

Clock = Callable[[], datetime]
# The events of many streams in one query (absent streams are missing from the result).
StreamLoader = Callable[[list[UUID]], dict[UUID, list[DomainEventProtocol[UUID]]]]
CodeGenerator = Callable[[], str]


class CodeHasher(Protocol):
    """Keyed one-way function of a code: the only form in which a code is stored."""

    def lookup_key(self, code: str) -> str: ...


class PersonalDataVault(Protocol):
    """Per-data-subject encryption (crypto-shredding: erase the key, the data is gone)."""

    def subject_for_email(self, email: str) -> str: ...

    def store_id(self, customer_id: str) -> str:
        """The id the store keeps for a customer, given the first time (P2: an end date)."""
        ...

    def resolve_store_id(self, customer_id: str) -> str | None:
        """The customer's store id; None if never given, or erased since."""
        ...

    def store_ids_for_batch(self, customer_ids: Iterable[str]) -> AbstractContextManager[None]:
        """Within it, `store_id` of these customers needs no query of its own."""
        ...

    def seal(self, subject_id: str, plaintext: str) -> str: ...

    def seal_field(self, subject_id: str, field: str, plaintext: str) -> str: ...

    def session(self) -> SubjectKeys: ...


class SubjectKeys(Protocol):
    """The vault within one unit of work: each subject's keys read once, and the keys it
    creates committed with its events (never after them)."""

    def subject_for_email(self, email: str) -> str: ...

    def prefetch(self, subjects: Iterable[str]) -> None:
        """Read many subjects' keys at once (a batch's, in one query)."""
        ...

    def seal(self, subject_id: str, plaintext: str) -> str: ...

    def seal_new_subject(self, subject_id: str, plaintext: str) -> str:
        """For a subject this unit of work creates (a new card's code): nothing to read."""
        ...

    def seal_field(self, subject_id: str, field: str, plaintext: str) -> str: ...

    def before_commit(self) -> dict[str, Any]:
        """Called once the unit's events are ready: the recorder's arguments that commit the
        new keys in their transaction, or nothing once the keys are committed on their own."""
        ...
