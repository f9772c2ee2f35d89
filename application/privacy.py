"""Data subjects' rights beside the event store: erasure, rectification, restriction, export,
request register, access log."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from eventsourcing.utils import get_topic

from application.cards import SEALED_FOR_BOTH, GiftCards, iso
from application.operators import BREAK_GLASS, Operators
from application.ports import AccessEntry, PrivacyRecords, Pseudonyms, SubjectVault
from domain.addresses import check_address
from domain.deadlines import check_extension, due_date, is_overdue
from domain.errors import refuse
from domain.giftcard import GiftCard
from domain.ports import PersonalDataVault
from domain.streams import CheckoutAttempts
from domain.subjects import DataSubject, rectified_field

Json = dict[str, Any]
CONTROLLER_MARKET = "FR"  # the controller is in Paris: French public holidays set P1 deadlines
REQUEST_TYPES = ("access", "erasure", "portability", "objection", "rectification", "restriction")
BUYER_FIELDS = ("buyer_email", "buyer_name", "message")  # sealed under the buyer's key
RECIPIENT_FIELDS = ("recipient_email", "recipient_name")  # sealed under the recipient's key
PAGE = 500
DEAD_LETTER_PREFIX = "dead-letters:"  # + the UTC day: the vault subject sealing its letters
RECIPIENT_PREFIX = "r-"  # a recipient's pseudonym, a keyed hash of the address (SubjectVault)

# Every event that says something about a data subject.
G = GiftCard
SCANNED: list[type[Any]] = [
    G.Purchased, G.Redeemed, G.RedemptionRefused, G.Cancelled, G.Refunded, G.Expired,
    G.Held, G.HoldReleased,
]
ATTEMPTS = (CheckoutAttempts.UnknownCodeTried, CheckoutAttempts.AttemptRefused)
SCANNED += ATTEMPTS
S = DataSubject
SCANNED += [S.Erased, S.ObjectedToProfiling, S.Rectified, S.Restricted, S.RestrictionLifted]
BOOKKEEPING = {"originator_id", "originator_version", "originator_topic", "timestamp"}
# Where the scanned events name a subject or an order (published as pseudonyms, P5; the
# envelope's table infra.envelope.PSEUDONYMISED, kept equal by tests/unit/test_pseudonyms.py).
SUBJECT_FIELDS = ("buyer_subject", "customer_id", "subject_id")
ORDER_FIELDS = ("order_id", "correlation_id")


class Service(Protocol):
    """The parts the rights need (read-only: the composition root's Service provides them)."""

    @property
    def app(self) -> GiftCards: ...

    @property
    def vault(self) -> SubjectVault: ...

    @property
    def pseudonyms(self) -> Pseudonyms: ...

    @property
    def privacy_records(self) -> PrivacyRecords: ...


@dataclass
class Holdings:
    """The events about a set of subject ids (one person), found in one pass over the log."""

    subjects: set[str]
    bought: list[Any] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)
    redemptions: list[Any] = field(default_factory=list)
    refunds: list[Any] = field(default_factory=list)
    refused: list[Any] = field(default_factory=list)
    unknown_codes: list[Any] = field(default_factory=list)
    rights: list[Any] = field(default_factory=list)
    holds: list[Any] = field(default_factory=list)  # authorizations for their orders, released
    refund_cards: list[Any] = field(default_factory=list)  # refund-card purchases for them
    refund_card_ids: set[uuid.UUID] = field(default_factory=set)
    later: dict[uuid.UUID, list[Any]] = field(default_factory=dict)  # events on cards held

    def add(self, event: Any) -> None:
        kind = type(event)
        if kind is G.Purchased:
            self._add_purchase(event)
        elif kind in (G.Redeemed, G.RedemptionRefused) and event.customer_id in self.subjects:
            (self.redemptions if kind is G.Redeemed else self.refused).append(event)
        elif kind is G.Refunded and event.order_id in {r.order_id for r in self.redemptions}:
            self.refunds.append(event)
            if event.new_card_id is not None:
                self.refund_card_ids.add(event.new_card_id)
        elif kind in (G.Held, G.HoldReleased) and self._theirs(event):
            self.holds.append(event)
        elif kind in ATTEMPTS and event.customer_id in self.subjects:
            # Every layout of attempt streams (per customer, per window) names the customer.
            self.unknown_codes.append(event)
        elif getattr(event, "subject_id", None) in self.subjects:
            self.rights.append(event)
        if event.originator_id in self.later and kind is not G.Purchased:
            self.later[event.originator_id].append(event)

    def _theirs(self, event: Any) -> bool:
        """A hold for their order, or the release of one."""
        if type(event) is G.Held:
            return event.customer_id in self.subjects
        key = (event.originator_id, event.order_id)
        return any((h.originator_id, h.order_id) == key for h in self.holds)

    def _add_purchase(self, event: Any) -> None:
        # A refund card belongs to the customer of the refunded order (R17): listed for them as
        # its owner, and for whoever's redemption it pays back (older cards named no owner).
        if event.payment_method == "refund" and (
            event.buyer_subject in self.subjects or event.originator_id in self.refund_card_ids
        ):
            self.refund_cards.append(event)
            self.later[event.originator_id] = []
        if event.payment_method == "card" and event.buyer_subject in self.subjects:
            self.bought.append(event)
            self.later[event.originator_id] = []
        if event.pii.get("recipient_subject") in self.subjects:
            self.received.append(event)
            self.later[event.originator_id] = []


def known_ids(service: Service) -> Iterator[tuple[str | None, str | None]]:
    """(subject id, order id) named by each scanned event, page by page, newest first (a
    support case is usually about recent orders)."""
    app = service.app
    topics = [get_topic(cls) for cls in SCANNED]
    start = app.recorder.max_notification_id() or 0
    while start > 0:
        first = max(1, start - PAGE + 1)
        for notification in reversed(app.recorder.select_notifications(
                first, PAGE, stop=start, topics=topics)):
            event = app.mapper.to_domain_event(notification)
            pii = getattr(event, "pii", None) or {}
            for name in (*SUBJECT_FIELDS, "recipient_subject"):
                value = pii.get(name) if name == "recipient_subject" else getattr(
                    event, name, None)
                if value is not None:
                    yield value, None
            for name in ORDER_FIELDS:
                if (value := getattr(event, name, None)) is not None:
                    yield None, value
        start = first - 1


def scan(service: Service, subjects: Iterable[str]) -> Holdings:
    """Stream the notification log page by page (never all in memory), keeping what matters."""
    app, held = service.app, Holdings(set(subjects))
    topics = [get_topic(cls) for cls in SCANNED]
    start = 1
    while page := app.recorder.select_notifications(start, PAGE, topics=topics):
        for notification in page:
            held.add(app.mapper.to_domain_event(notification))
        start = page[-1].id + 1
    return held


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
    read: Callable[[], Json], subjects: Callable[[Json], Iterable[Any]],
) -> Json:
    """R21: a read naming customers needs a registered operator (checked before
    reading), and each subject shown is access-logged before it is shown."""
    access = PiiReader(service, operator or "", purpose, command)
    found = read()
    for subject in dict.fromkeys(str(s) for s in subjects(found) if s):
        access.note(subject, command.rsplit(" ", 1)[-1])
    access.flush()
    return found


# The fields of a card's events that name a customer (pseudonymous ids are personal data).
SUBJECT_FIELDS = ("buyer_subject", "customer_id", "subject_id")


def history_subjects(history: Json) -> Iterator[str]:
    """The customers a card's history (GiftCards.history) names: its buyer, who redeemed it."""
    for event in history["events"]:
        for name in SUBJECT_FIELDS:
            if value := event["data"].get(name):
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
        self.rows.append(
            (at, len(self.rows), self.operator, subject_id, name, self.purpose, self.command)
        )

    def flush(self) -> None:
        self.service.privacy_records.log_access(self.rows)
        self.rows.clear()


class Privacy:
    """The rights of data subjects (R21, P1-P4) as operations of customer service."""

    def __init__(self, service: Service) -> None:
        self.service, self.app = service, service.app
        self.records = service.privacy_records
        self.calendar = service.app.markets.get(CONTROLLER_MARKET)
        self.records.create()

    def today(self) -> date:
        return self.calendar.local_date(self.app.now())

    def subject_for_email(self, email: str, reader: PiiReader) -> Json:
        """Links an e-mail to a person: an operator's act, logged like a decryption (R21).
        An e-mail given by a rectification finds the subject it corrected (`subject_id`); the
        e-mail's own pseudonym, if another, is listed too (cards sent to it since)."""
        if self.records.retired_at(self.service.vault.subject_for_email(email)) is not None:
            raise refuse("former_address", "a rectification replaced this address: it finds its "
                         "subject only for an erasure or an export (gdpr erase/export --email)")
        found = list(subjects_of_email(self.service, email))
        for subject_id in found:
            reader.note(subject_id, "email")
        reader.flush()
        return {"subject_id": found[0], **({"subject_ids": found} if len(found) > 1 else {})}

    # --- pseudonyms on the stream (P5, R21) -------------------------------------------

    def pseudonym_of(
        self, reader: PiiReader, *, customer_id: str | None = None, order_id: str | None = None
    ) -> Json:
        """The published pseudonym of a customer (or recipient subject) id or an order id:
        customer service's side of the mapping, logged like a decryption (R21)."""
        if customer_id is not None:
            reader.note(customer_id, "pseudonym")
            reader.flush()
            return {"customer_id": customer_id,
                    "pseudonym": self.service.pseudonyms.subject(customer_id)}
        if order_id is None:
            raise refuse("invalid_input", "give a customer id, an order id or a pseudonym")
        reader.note(f"order:{order_id}", "pseudonym")
        reader.flush()
        return {"order_id": order_id, "pseudonym": self.service.pseudonyms.order(order_id)}

    def resolve_pseudonym(self, pseudonym: str, reader: PiiReader) -> Json:
        """The clear id behind a pseudonym, found among the ids the store knows (a pseudonym
        cannot be inverted, only recomputed); the id found is logged before it is shown."""
        pseudonyms = self.service.pseudonyms
        kind = "customer_id" if pseudonym.startswith("cus_") else "order_id"
        for subject_id, order_id in known_ids(self.service):
            if subject_id is not None and pseudonyms.subject(subject_id) == pseudonym:
                reader.note(subject_id, "pseudonym")
                reader.flush()
                return {"pseudonym": pseudonym, "customer_id": subject_id}
            if order_id is not None and pseudonyms.order(order_id) == pseudonym:
                reader.note(f"order:{order_id}", "pseudonym")
                reader.flush()
                return {"pseudonym": pseudonym, "order_id": order_id}
        raise refuse("unknown_pseudonym", f"no {kind.replace('_', ' ')} in the store has this "
                     "pseudonym")

    # --- erasure (P2) and objection (P4) ----------------------------------------------

    def erase(self, subjects: list[str], request_id: str, operator: str) -> Json:
        """Destroy the keys first, then record the erasure: a retry after a crash completes it.
        Accountable: a registered operator acts on a registered erasure request of this
        subject, and the request is closed with the outcome."""
        reader = PiiReader(self.service, operator, "erasure request", "gdpr erase")
        subjects = every_identifier(self.records, subjects)
        done = self._check_request(request_id, subjects, "erasure")
        if done is not None:
            return {**done, "replayed": True}
        keys = {s: self.service.vault.erase(s) for s in subjects}
        self._forget_rectifications(subjects)
        shredding = self.service.vault.finish_shredding(subjects)
        recorded = [
            self.app.record_subject_right(s, self._reference(request_id, s), "erasure")
            for s in subjects
        ]
        for subject in subjects:
            reader.note(subject, "*")
        reader.flush()
        held = scan(self.service, subjects)
        unreadable: dict[str, int] = dict.fromkeys(BUYER_FIELDS + RECIPIENT_FIELDS, 0)
        for event in held.bought:
            for name in BUYER_FIELDS:
                unreadable[name] += name in event.pii
        for event in held.received:
            for name in (*RECIPIENT_FIELDS, "message"):  # a message to them: sealed for both
                unreadable[name] += name in event.pii
        outcome = {
            "request_id": request_id,
            "subject_ids": subjects,
            "operator": operator,
            "keys_destroyed": sum(keys.values()),
            "shredding": shredding,
            "already_erased": not any(keys.values()),
            "recorded": [r["recorded"] for r in recorded],
            "cards_as_buyer": [str(e.originator_id) for e in held.bought],
            "cards_as_recipient": [str(e.originator_id) for e in held.received],
            "fields_unreadable": unreadable,
            "retained": "amounts, dates, statuses, order ids and pseudonymous ids (P2: accounts)",
        }
        self._close_with(request_id, operator, outcome)
        return {**outcome, "replayed": False}

    def object(self, subjects: list[str], request_id: str, operator: str) -> Json:
        return self._record_right(subjects, request_id, operator, "objection",
                                  "objection request", "gdpr object")

    def _record_right(self, subjects: list[str], request_id: str, operator: str, kind: str,
                      purpose: str, command: str) -> Json:
        """An objection or a restriction: recorded on each subject's stream, access-logged,
        the request closed with its outcome (a replay answers the same)."""
        reader = PiiReader(self.service, operator, purpose, command)
        done = self._check_request(request_id, subjects, kind)
        if done is not None:
            return {**done, "replayed": True}
        results = [
            self.app.record_subject_right(s, self._reference(request_id, s), kind)
            for s in subjects
        ]
        for subject in subjects:
            reader.note(subject, "*")
        reader.flush()
        outcome = {"request_id": request_id, "subject_ids": subjects, "operator": operator,
                   "results": results}
        self._close_with(request_id, operator, outcome)
        return {**outcome, "replayed": False}

    # --- rectification (art. 16) and restriction (art. 18) -------------------------------

    def rectify(
        self, subject_id: str, field: str, value: str, request_id: str, operator: str
    ) -> Json:
        """The corrected value is sealed beside the store and read instead of the old one by
        every later delivery and export; the subject's stream records which field changed."""
        DataSubject.check_rectifiable(field)
        if not value.strip():
            raise refuse("invalid_input", "a rectification needs the corrected value")
        if field == "email":
            check_address(value, "value")
        reader = PiiReader(self.service, operator, "rectification request", "gdpr rectify")
        # Asked by any identifier the person has had: the correction is the person's.
        subject_id = self.records.person_of(subject_id)
        ids = every_identifier(self.records, [subject_id])
        done = self._check_request(request_id, ids, "rectification")
        if done is not None:
            return {**done, "replayed": True}
        retired = self._addresses_of(subject_id, ids, reader) if field == "email" else set()
        # The old value (every card's, under this field's key, at every identifier of the
        # person) becomes unreadable; the corrected one is sealed under a new key of the
        # field, which the next one destroys.
        shredded = sum(self.service.vault.shred_field(i, field) for i in ids)
        shredding = self.service.vault.finish_shredding(ids)
        if shredding == "final_after_kek_rotation":  # PostgreSQL: the field key was sealed
            # under the subject's live key, not the KEK: old WAL and backups keep it readable.
            shredding = "final_when_old_wal_and_backups_expire"
        token = self.service.vault.seal_field(subject_id, field, value)
        now = iso(self.app.now())
        alias = self.service.vault.subject_for_email(value) if field == "email" else None
        self.records.record_rectification(subject_id, field, token, now, retired - {alias}, alias)
        recorded = self.app.record_subject_right(
            subject_id, self._reference(request_id, subject_id), "rectification", field
        )
        reader.note(subject_id, field)
        reader.flush()
        outcome = {"request_id": request_id, "subject_id": subject_id, "operator": operator,
                   "field": field, "recorded": recorded["recorded"],
                   "old_value_shredded": bool(shredded), "shredding": shredding}
        self._close_with(request_id, operator, outcome)
        return {**outcome, "replayed": False}

    def _addresses_of(self, person: str, ids: list[str], reader: PiiReader) -> set[str]:
        """The pseudonyms of the person's addresses in use before this correction: a recipient
        pseudonym they are known by, the address of a previous correction, or the address
        they bought with (opened, and logged, before it is shredded)."""
        former = self.records.former_identifiers(person)
        current = {i for i in ids if i.startswith(RECIPIENT_PREFIX) and i not in former}
        if current - {person}:
            return current
        vault = self.service.vault
        for event in scan(self.service, [person]).bought:
            email = reader.open(person, event.pii.get("buyer_email"), "buyer_email")
            if email and "@" in email:  # not the erased marker
                current.add(vault.subject_for_email(email))
        return current

    def restrict(self, subjects: list[str], request_id: str, operator: str) -> Json:
        """Art. 18: data kept, profiling stopped (the fraud views honour the published event)
        until `unrestrict`; a card already paid for is still delivered (see README)."""
        return self._record_right(subjects, request_id, operator, "restriction",
                                  "restriction request", "gdpr restrict")

    def unrestrict(self, subjects: list[str], request_id: str, operator: str) -> Json:
        """Art. 18(3): lifts the restriction that request put in force (a retry is a no-op)."""
        reader = PiiReader(self.service, operator, "restriction lifted", "gdpr unrestrict")
        row = self.records.request(request_id)
        if row is None or row["type"] != "restriction" or row["subject_id"] not in subjects:
            raise refuse("unknown_request", "give the restriction request of this subject")
        results = [
            self.app.record_subject_right(s, self._reference(request_id, s), "restriction_lifted")
            for s in subjects
        ]
        for subject in subjects:
            reader.note(subject, "*")
        reader.flush()
        return {"request_id": request_id, "subject_ids": subjects, "operator": operator,
                "results": results}

    def _forget_rectifications(self, subjects: list[str]) -> None:
        for subject in subjects:
            self.records.forget_subject(subject)

    def _check_request(self, request_id: str, subjects: list[str], kind: str) -> Json | None:
        """The request must be in the register, of this kind and of one of these subjects;
        a request already acted on returns its recorded outcome."""
        row = self.records.request(request_id)
        if row is None:
            raise refuse("unknown_request", "register the request first (gdpr request open)")
        if row["subject_id"] not in subjects or row["type"] != kind:
            raise refuse(
                "request_mismatch",
                f"request {request_id[:40]} is a {row['type']} request of another subject",
            )
        done = self.records.outcome(request_id)
        return dict(json.loads(done[1])) if done else None

    def _reference(self, request_id: str, subject_id: str) -> str:
        """What the subject's stream records: stable for the request (a retry records nothing
        twice) but different per subject, so two erasures of one request are not linkable
        on the published stream (P5)."""
        salt = self.records.salt(request_id, secrets.token_hex(16))
        digest = hashlib.sha256(f"{salt}\x00{request_id}\x00{subject_id}".encode())
        return f"ref-{digest.hexdigest()[:32]}"

    def _close_with(self, request_id: str, operator: str, outcome: Json) -> None:
        self.records.close_request(request_id, operator, json.dumps(outcome),
                                   iso(self.app.now()), self.today().isoformat())

    # --- retention (policy: "temporary archived form for the period necessary") -------

    def purge(self, *, card_years: int) -> Json:
        """Crypto-shreds the personal data of every subject whose last card event (as buyer,
        recipient or customer) is more than `card_years` old; amounts and dates stay (P2)."""
        now = self.app.now()
        cutoff = years_before(now, card_years)
        last = last_activity(self.service)
        live = self.service.vault.live_subjects()
        due = sorted(s for s in live if s in last and last[s] < cutoff)
        reference = f"retention-{cutoff.date().isoformat()}"
        keys = {s: self.service.vault.erase(s) for s in due}
        self._forget_rectifications(due)
        shredding = self.service.vault.finish_shredding(due) if due else "verified"
        for subject in due:
            self.app.record_subject_right(subject, reference, "erasure")
        completed = self.service.vault.complete_pending()
        unlabelled = self.service.vault.forget_erased()  # keys erased by an older vault
        return {
            "as_of": iso(now),
            "cutoff": iso(cutoff),
            "subjects_erased": len(due),
            "keys_destroyed": sum(keys.values()),
            "shredding": shredding,
            "pending_erasures_completed": len(completed),
            "erased_keys_unlabelled": unlabelled,
        }

    def purge_dead_letter_keys(self, *, days: int) -> Json:
        """The dead letters' originals end with their day's key, `days` after that day (the
        topic's own retention drops the letters themselves)."""
        cutoff = (self.app.now() - timedelta(days=days)).date().isoformat()
        due = sorted(s for s in self.service.vault.live_subjects()
                     if s.startswith(DEAD_LETTER_PREFIX)
                     and s.removeprefix(DEAD_LETTER_PREFIX) < cutoff)
        destroyed = sum(self.service.vault.erase(s) for s in due)
        if due:
            self.service.vault.finish_shredding(due)
        return {"days_before": cutoff, "keys_destroyed": destroyed}

    def purge_records(self, *, access_log_days: int, request_years: int) -> Json:
        """The end dates of the accountability records: access-log entries older than
        `access_log_days`, and requests closed more than `request_years` ago with their
        outcomes (open requests are kept whatever their age)."""
        now = self.app.now()
        logged_before = iso(now - timedelta(days=access_log_days))
        closed_before = years_before(self.today(), request_years).isoformat()
        old_log, ended = self.records.purge(logged_before=logged_before,
                                            closed_before=closed_before)
        return {"access_log_entries_deleted": old_log, "access_log_cutoff": logged_before,
                "requests_deleted": ended, "requests_closed_before": closed_before}

    # --- access and portability (P3) --------------------------------------------------

    def export(
        self, subjects: list[str], reader: PiiReader,
        profiling: Callable[[list[str]], list[Json]] | None = None,
    ) -> Json:
        """Everything held about the subject and nothing about anyone else (see withheld);
        `profiling` gives the fraud alerts about them (the views, outside the store).
        Its shape is schemas/subject-export.json (art. 15, 20)."""
        subjects = every_identifier(self.records, subjects)
        held = scan(self.service, subjects)
        self._late_refund_cards(held)
        held.received = [e for e in held.received if not self._given_after_retirement(e)]
        for subject in subjects:  # R21: an export is an access, decrypted or not
            reader.note(subject, "export")
        # An erased recipient's pseudonym is a keyed hash of the e-mail: exporting by e-mail
        # must not lead back to the cards. Kept for the accounts, unlinked (P2).
        erased = {e.subject_id for e in held.rights if type(e) is S.Erased}
        unlinked = [e for e in held.received if e.pii["recipient_subject"] in erased]
        held.received = [e for e in held.received if e.pii["recipient_subject"] not in erased]
        log = self._access_log_rows(subjects)
        # The views hold pseudonyms (P5): asked by them, shown with the subject's own ids.
        published = {self.service.pseudonyms.subject(s): s for s in subjects}
        try:
            document = {
                "subject_ids": subjects,
                "generated_at": iso(self.app.now()),
                "cards_bought": [self._bought(e, held, reader) for e in held.bought],
                "cards_received": [self._received(e, held, reader) for e in held.received],
                "refund_cards": [self._refund_card(e, held, reader) for e in held.refund_cards],
                "holds": [facts(e, card_id=True) for e in held.holds],
                "profiling": [
                    {**a, "customer_id": published.get(a["customer_id"], a["customer_id"])}
                    for a in (profiling(list(published)) if profiling is not None else [])
                ],
                "rectifications": self._rectifications(subjects),
                "access_log": log,
                "redemptions": [facts(e, card_id=True) for e in held.redemptions],
                "refunds": [facts(e, card_id=False) for e in held.refunds],
                "refused_redemptions": [facts(e, card_id=False) for e in held.refused],
                "unknown_code_attempts": [facts(e, card_id=False) for e in held.unknown_codes],
                "rights_exercised": [
                    {"type": type(e).__name__, **facts(e, card_id=False)} for e in held.rights
                ],
                "requests": [r for s in subjects for r in self.requests_of(s)],
                "withheld": WITHHELD + (UNLINKED if unlinked else []),
            }
        finally:
            reader.flush()
        return document

    def _given_after_retirement(self, event: Any) -> bool:
        """A card bought for a former address after the person left it: someone else's."""
        retired = self.records.retired_at(event.pii["recipient_subject"])
        return retired is not None and iso(event.at) > retired

    def _bought(self, event: Any, held: Holdings, reader: PiiReader) -> Json:
        buyer = event.buyer_subject
        cancelled = [e for e in held.later[event.originator_id] if type(e) is G.Cancelled]
        return {
            **card_facts(event),
            "order_id": event.correlation_id,
            "code_last4": event.code_last4,
            **{n: reader.open(buyer, event.pii.get(n), n) for n in BUYER_FIELDS[:2]},
            "message": reader.open_message(buyer, event.pii),
            "has_recipient": "recipient_subject" in event.pii,
            "cancelled": [facts(e, card_id=False) for e in cancelled],
        }

    def _late_refund_cards(self, held: Holdings) -> None:
        """Refund cards whose purchase the log lists before the refund naming them."""
        found = {e.originator_id for e in held.refund_cards}
        for card_id in sorted(held.refund_card_ids - found):
            events = list(self.app.events.get(card_id))
            if events and type(events[0]) is G.Purchased:
                held.refund_cards.append(events[0])
                held.later[card_id] = list(events[1:])

    def _refund_card(self, event: Any, held: Holdings, reader: PiiReader) -> Json:
        mine = event.buyer_subject in held.subjects
        return {
            **card_facts(event),
            "status": status_of(held.later[event.originator_id]),
            "replaces": str(event.replaces) if event.replaces else None,
            # Sent to its owner, the returning customer: their own sealed fields, nobody else's.
            **{n: reader.open(event.buyer_subject, event.pii.get(n), n) if mine else None
               for n in ("buyer_email", "buyer_name")},
        }

    def _rectifications(self, subjects: list[str]) -> list[Json]:
        return self.records.rectifications(subjects)

    def _access_log_rows(self, subjects: list[str]) -> list[Json]:
        # A listing of the views (`fraud alerts`) logs the pseudonym it showed: theirs too.
        published = {self.service.pseudonyms.subject(s): s for s in subjects}
        rows = self.records.access_log([*subjects, *published])
        return [{**row, "subject_id": published.get(row["subject_id"], row["subject_id"])}
                for row in rows]

    def _received(self, event: Any, held: Holdings, reader: PiiReader) -> Json:
        recipient = event.pii["recipient_subject"]
        return {
            **card_facts(event),
            "status": status_of(held.later[event.originator_id]),
            **{n: reader.open(recipient, event.pii.get(n), n) for n in RECIPIENT_FIELDS},
            # Written by the buyer (their key) but sent to this person, who already has it.
            "message": reader.open_message(event.buyer_subject, event.pii),
        }

    # --- access log (R21) -------------------------------------------------------------

    def access_log(self, subject_id: str, reader: PiiReader) -> Json:
        reader.note(subject_id, "access_log")
        reader.flush()
        entries = [
            {k: v for k, v in row.items() if k != "subject_id"}
            for row in self._access_log_rows([subject_id])
        ]
        return {"subject_id": subject_id, "entries": entries}

    # --- request register (P1) --------------------------------------------------------

    def open_request(
        self, subject_id: str, kind: str, received_on: date, request_id: str | None
    ) -> Json:
        if kind not in REQUEST_TYPES:
            raise refuse("invalid_input", f"request type must be one of {', '.join(REQUEST_TYPES)}")
        if received_on > self.today():
            raise refuse("invalid_date", "a request cannot be received in the future")
        request_id = request_id or f"req-{uuid.uuid4()}"
        existing = self.records.request(request_id)
        if existing is not None:
            same = (existing["subject_id"], existing["type"], existing["received_on"])
            if same != (subject_id, kind, received_on.isoformat()):
                raise refuse("request_id_conflict", "this request id is already another request")
            return {**self._present(existing), "replayed": True}
        due = due_date(received_on, calendar=self.calendar)
        self.records.add_request({
            "request_id": request_id, "subject_id": subject_id, "type": kind,
            "received_on": received_on.isoformat(), "due_on": due.isoformat(),
            "extension_months": 0, "extension_reason": None, "status": "open",
            "opened_at": iso(self.app.now()), "closed_on": None,
        })
        return {**self.request(request_id), "replayed": False}

    def extend(self, request_id: str, months: int, reason: str) -> Json:
        """Art. 12(3): decided, with its reason, within the first month, while still open."""
        row = self.request(request_id)
        if row["status"] != "open":
            raise refuse("request_closed", "a closed request cannot be extended")
        if not reason.strip():
            raise refuse("invalid_input", "an extension needs a reason")
        received = date.fromisoformat(row["received_on"])
        if self.today() > due_date(received, calendar=self.calendar):
            raise refuse("extension_too_late", "an extension is decided within the first month")
        total = check_extension(row["extension_months"], months)
        due = due_date(received, calendar=self.calendar, extension_months=total)
        self.records.extend_request(request_id, total, reason, due.isoformat())
        return self.request(request_id)

    def close(self, request_id: str, outcome: str, reader: PiiReader) -> Json:
        """The answer was sent: who closed the request and what the outcome was are recorded
        (accountability); closing again keeps the first outcome."""
        if not outcome.strip():
            raise refuse("invalid_input", "closing a request records its outcome")
        row = self.request(request_id)
        if row["status"] == "open":
            self._reference(request_id, row["subject_id"])  # its outcome row
            reader.note(row["subject_id"], "request")
            reader.flush()
            self._close_with(request_id, reader.operator,
                             {"request_id": request_id, "operator": reader.operator,
                              "outcome": outcome})
        return {**self.request(request_id), **self._outcome(request_id)}

    def _outcome(self, request_id: str) -> Json:
        found = self.records.outcome(request_id)
        if found is None:
            return {"closed_by": None, "outcome": None}
        operator, outcome, closed_at = found
        return {"closed_by": operator, "outcome": json.loads(outcome).get("outcome", "done"),
                "closed_at": closed_at}

    def request(self, request_id: str) -> Json:
        row = self.records.request(request_id)
        if row is None:
            raise refuse("unknown_request", f"no request with id {request_id[:40]!r}")
        return self._present(row)

    def requests_of(self, subject_id: str) -> list[Json]:
        return [self._present(r) for r in self.records.requests_of(subject_id)]

    def list_requests(
        self, *, overdue: bool, as_of: date | None, due_within: int | None = None
    ) -> Json:
        """All requests; or the open ones past their due date; or the warning list: the open
        ones due within `due_within` days (late ones included, flagged `overdue`)."""
        day = as_of or self.today()
        if overdue:
            rows = self.records.open_requests_due(before=day.isoformat())
        elif due_within is not None:
            rows = self.records.open_requests_due(
                by=(day + timedelta(days=due_within)).isoformat())
        else:
            rows = self.records.all_requests()
        return {"as_of": day.isoformat(), "requests": [self._present(r, day) for r in rows]}

    def due_counts(self, within_days: int) -> Json:
        """What /metrics shows of the register: no subject, only how many requests are late
        and how many are due within `within_days` days (late ones included)."""
        day = self.today()
        late, due = self.records.due_counts(
            late_before=day.isoformat(),
            due_by=(day + timedelta(days=within_days)).isoformat())
        return {"overdue": late, "due_within": due}

    def _present(self, row: Json, as_of: date | None = None) -> Json:
        day = as_of or self.today()
        due = date.fromisoformat(row["due_on"])
        return {**row, "overdue": is_overdue(due, day, closed=row["status"] != "open")}


def dead_letter_sealer(vault: PersonalDataVault, now: Callable[[], Any]) -> Callable[[bytes], str]:
    """Seals a refused input's original under the key of the day it was refused (UTC)."""

    def seal(raw: bytes) -> str:
        subject = DEAD_LETTER_PREFIX + now().date().isoformat()
        return vault.seal(subject, base64.b64encode(raw).decode())

    return seal


def years_before(instant: Any, years: int) -> Any:
    try:
        return instant.replace(year=instant.year - years)
    except ValueError:  # 29 February
        return instant.replace(year=instant.year - years, day=28)


def last_activity(service: Service) -> dict[str, Any]:
    """The instant of each subject's latest event, over every card they bought or received
    and every event naming them as customer: one pass over the log."""
    app = service.app
    card_subjects: dict[uuid.UUID, set[str]] = {}
    card_last: dict[uuid.UUID, Any] = {}
    last: dict[str, Any] = {}
    topics = [get_topic(cls) for cls in SCANNED]
    start = 1
    while page := app.recorder.select_notifications(start, PAGE, topics=topics):
        for notification in page:
            event: Any = app.mapper.to_domain_event(notification)
            at = event.at
            if type(event) is G.Purchased:
                given = (event.buyer_subject, event.pii.get("recipient_subject"))
                card_subjects[event.originator_id] = {n for n in given if n}
            if event.originator_id in card_subjects:
                card_last[event.originator_id] = at
            name = getattr(event, "customer_id", None)  # a right exercised is no activity
            if name and (name not in last or last[name] < at):
                last[name] = at
        start = page[-1].id + 1
    for card, names in card_subjects.items():
        for name in names:
            if name not in last or last[name] < card_last[card]:
                last[name] = card_last[card]
    return last


def card_facts(event: Any) -> Json:
    return {
        "card_id": str(event.originator_id),
        "market": event.market,
        "currency": event.currency,
        "amount": event.amount,
        "purchased_at": iso(event.at),
        "expires_at": iso(event.expires_at),
    }


def facts(event: Any, *, card_id: bool) -> Json:
    """An event's own fields, minus store bookkeeping (and the card id, unless it is theirs)."""
    data: Json = event.model_dump(mode="json", exclude=BOOKKEEPING | {"customer_id"})
    return {"card_id": str(event.originator_id), **data} if card_id else data


STATUS_AFTER: dict[type[Any], str] = {
    G.Redeemed: "redeemed", G.Cancelled: "cancelled", G.Expired: "expired"
}


def status_of(later: list[Any]) -> str:
    status = "active"
    for event in later:
        status = STATUS_AFTER.get(type(event), status)
    return status
WITHHELD = [
    "cards bought: the recipient's email and name (the recipient's data, sealed with their key)"
    " and what happened to the card after it was given (the recipient's use of it)",
    "cards received: the buyer's identity; the buyer's message is included (sent to you)",
]


UNLINKED = [
    "cards received under an erased e-mail: no longer linked to it (kept for the accounts, P2)"
]


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
