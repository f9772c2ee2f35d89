"""Who may see personal data (R21): the operator check, logged reads, a person's identifiers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from application.card_base import SEALED_FOR_BOTH, iso
from application.operators import BREAK_GLASS, Operators
from application.ports import AccessEntry, PrivacyRecords
from application.privacy_scan import SUBJECT_FIELDS, Service
from application.results import CardHistory
from domain.errors import refuse
from domain.ids import RECIPIENT_PREFIX, STORE_ID_PREFIX
from domain.subjects import rectified_field

T = TypeVar("T")


def check_operator(service: Service, operator: str | None) -> str:
    """R21: personal data is shown only to an operator of the register, not disabled, or to the
    break-glass holder of the service's secret. The entry points authenticate who that is
    (application.operators): here the name is checked against the register."""
    if not (operator or "").strip():
        raise refuse("operator_required", "commands that show personal data need an operator")
    assert operator is not None
    if operator.startswith(BREAK_GLASS):
        return operator
    register = Operators(service.app).register_of()
    entry = register.operators.get(operator) if register is not None else None
    if entry is None:
        raise refuse("unknown_operator", "this operator is not in the register of operators")
    if entry.disabled:
        raise refuse("invalid_operator_key", "this operator is disabled")
    return operator


def logged_read(
    service: Service, operator: str | None, purpose: str, command: str,
    read: Callable[[], T], subjects: Callable[[T], Iterable[Any]],
) -> T:
    """R21: a read naming customers needs a registered operator (checked before
    reading), and each subject shown is access-logged before it is shown."""
    access = PiiReader(service, operator or "", purpose, command)
    found = read()
    for subject in dict.fromkeys(str(s) for s in subjects(found) if s):
        access.note(subject, command.rsplit(" ", 1)[-1])
    access.flush()
    return found


def history_subjects(history: CardHistory) -> Iterator[str]:
    """The customers a card's history (GiftCards.history) names: its buyer, who redeemed it."""
    for event in history.events:
        for name in SUBJECT_FIELDS:
            if value := event.data.get(name):
                yield str(value)


class PiiReader:
    """Opens sealed fields for one command, recording each decryption (R21) before it is shown."""

    def __init__(
        self, service: Service, operator: str, purpose: str, command: str, *,
        process: bool = False,
    ) -> None:
        service.privacy_records.create()
        # The register lists people (R21); a process of the service itself (the delivery worker
        # sending buyers their own card, R7) reads for its purpose, logged as `process:<name>`.
        checked = f"process:{operator}" if process else check_operator(service, operator)
        self.service, self.operator, self.process = service, checked, process
        self.purpose, self.command = purpose, command
        self.rows: list[AccessEntry] = []
        # Store ids noted under the customer id the operator named (see named_in_store): the
        # access log never pairs a customer id with their store id.
        self.aliases: dict[str, str] = {}

    def open(self, subject_id: str, token: str | None, name: str) -> str | None:
        """The clear value of a sealed field, or its rectified value if one was recorded."""
        kind = rectified_field(name)
        owner = self._rectified_owner(subject_id) if kind is not None else None
        if owner is not None and kind is not None:
            corrected = self.service.privacy_records.rectified_token(owner, kind)
            if corrected is not None:  # sealed under the key of the person who asked for it
                token, subject_id = corrected, owner
        if token is None:
            return None
        self.note(subject_id, name)
        return self.service.vault.open(subject_id, token)

    def _rectified_owner(self, subject_id: str) -> str | None:
        """Whose correction applies: for customer service, the person behind any identifier
        they have had; for a process of the service (a delivery), only the identifier itself,
        never through a former address (a later gift there is someone else's)."""
        records = self.service.privacy_records
        if not self.process:
            return records.person_of(subject_id)
        return None if records.retired_at(subject_id) is not None else subject_id

    def open_message(self, buyer: str | None, pii: dict[str, str]) -> str | None:
        """The buyer's message; one to a recipient is sealed under both their keys."""
        text = self.open(buyer, pii.get("message"), "message") if buyer else None
        if text is None or not text.startswith(SEALED_FOR_BOTH):
            return text
        recipient = pii["recipient_subject"]
        self.note(recipient, "message")
        return self.service.vault.open(recipient, text.removeprefix(SEALED_FOR_BOTH))

    def note(self, subject_id: str, name: str) -> None:
        """Records an access that is not a decryption (a lookup, an erasure, a listing)."""
        at = iso(self.service.app.now())
        subject_id = self.aliases.get(subject_id, subject_id)
        self.rows.append(
            (at, len(self.rows), self.operator, subject_id, name, self.purpose, self.command)
        )

    def flush(self) -> None:
        self.service.privacy_records.log_access(self.rows)
        self.rows.clear()

def named_in_store(service: Service, ids: Iterable[str], reader: PiiReader | None = None, *,
                   create: bool = False) -> dict[str, str | None]:
    """Each id as the store keeps it (P2): a customer's store id from the vault's index; a
    recipient's pseudonym or a store id is itself; None for a customer the index does not
    know (never seen, or erased since), unless `create` gives them one now (a right recorded
    before their first purchase follows them). The reader notes store ids as named."""
    found: dict[str, str | None] = {}
    vault = service.vault
    for named in ids:
        if named.startswith((RECIPIENT_PREFIX, STORE_ID_PREFIX)):
            found[named] = named
            continue
        found[named] = vault.store_id(named) if create else vault.resolve_store_id(named)
        if reader is not None and found[named] not in (None, named):
            reader.aliases[str(found[named])] = named
    return found


def iter_subjects(ids: Iterable[str], emails: Iterable[str], service: Service) -> Iterator[str]:
    """Every identifier of the people named: by a subject id or an e-mail (a recipient's id),
    current or replaced by a rectification (for an erasure or an export, art. 15, 17)."""
    service.privacy_records.create()
    named = [*ids, *(service.vault.subject_for_email(e) for e in emails)]
    yield from every_identifier(service.privacy_records, named)


def subjects_of_email(service: Service, email: str) -> Iterator[str]:
    """The subject whose e-mail a rectification set to this one (art. 16: still the same
    person), then the e-mail's own pseudonym (a recipient's id)."""
    pseudonym = service.vault.subject_for_email(email)
    service.privacy_records.create()
    owner = service.privacy_records.current_owner(pseudonym)
    if owner is not None:
        yield owner
    yield pseudonym


def every_identifier(records: PrivacyRecords, subject_ids: Iterable[str]) -> list[str]:
    """The people behind these identifiers, each with every identifier they have had."""
    found: dict[str, None] = {}
    for named in subject_ids:
        person = records.person_of(named)
        found.update(dict.fromkeys([named, person, *records.identifiers_of(person)]))
    return list(found)
