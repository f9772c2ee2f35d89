"""What the application's use cases need of the adapters, beyond the domain's own ports."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from domain.ports import PersonalDataVault


class SqlDatabase(Protocol):
    """Plain SQL beside the event store (the GDPR request register and access log)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def tx(self) -> AbstractContextManager[Any]: ...


class Pseudonyms(Protocol):
    """The keyed pseudonyms of ids on the published stream (P5); only the service holds the key."""

    def subject(self, subject_id: str) -> str: ...

    def order(self, order_id: str) -> str: ...


class SubjectVault(PersonalDataVault, Protocol):
    """The vault as the data subjects' rights use it: read back and crypto-shred."""

    def open(self, subject_id: str, token: str) -> str: ...

    def erase(self, subject_id: str) -> int: ...

    def shred_field(self, subject_id: str, field: str) -> int: ...

    def finish_shredding(self, subject_ids: list[str]) -> str:
        """`verified`, `pending` (finished by the next writer) or `final_after_kek_rotation`."""
        ...

    def complete_pending(self) -> list[str]: ...

    def rotate(self) -> dict[str, object]: ...

    def live_subjects(self) -> set[str]: ...
