"""What the domain needs from the outside world, passed in by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from uuid import UUID

Clock = Callable[[], datetime]
# Which of these stream ids exist in the store (one query for a whole batch).
StreamLookup = Callable[[list[UUID]], set[UUID]]
CodeGenerator = Callable[[], str]


class CodeHasher(Protocol):
    """Keyed one-way function of a code: the only form in which a code is stored."""

    def lookup_key(self, code: str) -> str: ...


class PersonalDataVault(Protocol):
    """Per-data-subject encryption (crypto-shredding: erase the key, the data is gone)."""

    def subject_for_email(self, email: str) -> str: ...

    def seal(self, subject_id: str, plaintext: str) -> str: ...
