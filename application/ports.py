"""What the application's use cases need of the adapters, beyond the domain's own ports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from uuid import UUID

from domain.ports import PersonalDataVault


class Pseudonyms(Protocol):
    """The keyed pseudonyms of ids on the published stream (P5); only the service holds the key."""

    def subject(self, subject_id: str) -> str: ...

    def order(self, order_id: str) -> str: ...

    def stream(self, stream_id: UUID) -> UUID:
        """A stream named after a customer (attempts, data subject), as it is published."""
        ...

    def unlinked(self, event_id: str, field: str) -> str:
        """A one-off pseudonym for one field of one event (restriction, objection, erasure)."""
        ...

    def message(self, message_id: str) -> str:
        """An order service message id, as a dead letter names it."""
        ...


class SubjectVault(PersonalDataVault, Protocol):
    """The vault as the data subjects' rights use it: read back and crypto-shred."""

    def open(self, subject_id: str, token: str) -> str: ...

    def erase(self, subject_id: str, *, tombstone: bool = True) -> int:
        """`tombstone=False`: a key no unit of work can be creating (a card's code key)."""
        ...

    def shred_field(self, subject_id: str, field: str) -> int: ...

    def finish_shredding(self, subject_ids: list[str]) -> str:
        """`verified`, `pending` (finished by the next writer) or `final_after_kek_rotation`."""
        ...

    def complete_pending(self) -> list[str]:
        """Pending erasures finished once no reader holds the old pages: their tombstones."""
        ...

    def forget_erased(self) -> int:
        """Destroyed keys still labelled with their subject relabelled; how many."""
        ...

    def rotate(self) -> dict[str, object]: ...

    def live_subjects(self) -> set[str]: ...

    def forget_store_ids(self, store_ids: list[str]) -> int:
        """The customer ids of these store ids no longer resolve (an erasure, retention)."""
        ...

    def store_ids_seeded(self) -> bool: ...

    def seed_store_ids(self, clear_ids: Iterable[str]) -> None:
        """Customers the store names in clear keep that id as their store id."""
        ...


# One access-log entry: (at, seq, operator, subject id, field, purpose, command).
AccessEntry = tuple[str, int, str, str, str, str, str]
# One request of the register, by column: request_id, subject_id, type, received_on, due_on,
# extension_months, extension_reason, status, opened_at, closed_on (dates ISO text).
RequestRow = dict[str, Any]


class PrivacyRecords(Protocol):
    """What the data subjects' rights keep beside the event store: the request register and
    its outcomes (P1), the access log (R21), corrected values and the identifiers a person
    has had (art. 16). Times and days are ISO text."""

    def create(self) -> None: ...

    def log_access(self, rows: Sequence[AccessEntry]) -> None: ...

    def access_log(self, subject_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Entries naming these ids, oldest first: at, operator, subject_id, field, purpose,
        command."""
        ...

    def rectified_token(self, subject_id: str, field: str) -> str | None: ...

    def rectifications(self, subject_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def record_rectification(
        self, subject_id: str, field: str, token: str, at: str,
        retired: Iterable[str], alias: str | None,
    ) -> None:
        """The corrected value (sealed), in one transaction with the identifiers it retires
        (former, still finding the person for erasure and export) and the new one (`alias`)."""
        ...

    def forget_subject(self, subject_id: str) -> None:
        """An erasure: the subject's corrections and identifiers go."""
        ...

    def retired_at(self, alias: str) -> str | None:
        """When a rectification retired this identifier, or None if it is not a former one."""
        ...

    def former_identifiers(self, subject_id: str) -> set[str]: ...

    def current_owner(self, alias: str) -> str | None:
        """The subject a rectification gave this identifier to (a current alias only)."""
        ...

    def person_of(self, identifier: str) -> str:
        """The subject behind a current or former alias, else the identifier itself."""
        ...

    def identifiers_of(self, person: str) -> list[str]: ...

    def add_request(self, row: RequestRow) -> None: ...

    def request(self, request_id: str) -> RequestRow | None: ...

    def requests_of(self, subject_id: str) -> list[RequestRow]: ...

    def all_requests(self) -> list[RequestRow]: ...

    def open_requests_due(
        self, *, before: str | None = None, by: str | None = None
    ) -> list[RequestRow]: ...

    def due_counts(self, *, late_before: str, due_by: str) -> tuple[int, int]: ...

    def extend_request(self, request_id: str, months: int, reason: str, due_on: str) -> None: ...

    def salt(self, request_id: str, fresh: str) -> str: ...

    def outcome(self, request_id: str) -> tuple[str, str, str] | None: ...

    def close_request(
        self, request_id: str, operator: str, outcome: str, closed_at: str, closed_on: str
    ) -> None: ...

    def purge(self, *, logged_before: str, closed_before: str) -> tuple[int, int]: ...
