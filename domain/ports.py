"""What the domain needs from the outside world, passed in by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol
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

    def seal(self, subject_id: str, plaintext: str) -> str: ...

    def seal_field(self, subject_id: str, field: str, plaintext: str) -> str: ...
