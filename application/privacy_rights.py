"""Objection (P4), restriction (art. 18) and rectification (art. 16) on a subject's stream."""

from __future__ import annotations

from dataclasses import asdict

from application.card_base import iso
from application.privacy_reads import PiiReader, every_identifier, named_in_store
from application.privacy_requests import RequestRegister
from application.privacy_scan import Json, scan
from domain.addresses import check_address
from domain.errors import refuse
from domain.ids import RECIPIENT_PREFIX
from domain.subjects import DataSubject


class SubjectRights(RequestRegister):
    """Objection, restriction and rectification: each closes its registered request."""

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
        stored = self._stored(subjects, reader)
        results = [
            self.app.record_subject_right(s, self._reference(request_id, s), kind)
            for s in stored
        ]
        for subject in stored:
            reader.note(subject, "*")
        reader.flush()
        outcome = {"request_id": request_id, "subject_ids": subjects, "operator": operator,
                   "results": [self._as_named(asdict(r), reader) for r in results]}
        self._close_with(request_id, operator, outcome)
        return {**outcome, "replayed": False}

    def _stored(self, subjects: list[str], reader: PiiReader) -> list[str]:
        """The ids the store keeps for these people, each with every identifier they have had
        (a right recorded before a customer's first purchase gives them their store id)."""
        named = named_in_store(self.service, subjects, reader, create=True)
        return every_identifier(self.records, [s or n for n, s in named.items()])

    @staticmethod
    def _as_named(result: Json, reader: PiiReader) -> Json:
        """A result as the operator named its subject: outcomes never pair a customer id
        with their store id."""
        return {**result, "subject_id": reader.aliases.get(result["subject_id"],
                                                          result["subject_id"])}

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
        given = subject_id
        # Asked by any identifier the person has had: the correction is the person's, under
        # the id the store keeps for them.
        stored = named_in_store(self.service, [given], reader, create=True)[given] or given
        subject_id = self.records.person_of(stored)
        ids = every_identifier(self.records, [subject_id])
        done = self._check_request(request_id, [given, *ids], "rectification")
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
        outcome = {"request_id": request_id,
                   "subject_id": reader.aliases.get(subject_id, subject_id), "operator": operator,
                   "field": field, "recorded": recorded.recorded,
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
        stored = self._stored(subjects, reader)
        results = [
            self.app.record_subject_right(s, self._reference(request_id, s), "restriction_lifted")
            for s in stored
        ]
        for subject in stored:
            reader.note(subject, "*")
        reader.flush()
        return {"request_id": request_id, "subject_ids": subjects, "operator": operator,
                "results": [self._as_named(asdict(r), reader) for r in results]}
