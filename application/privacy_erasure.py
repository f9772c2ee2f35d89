"""Erasure (P2) on request and past retention, the records' end dates, dead letters' day keys."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from application.card_base import iso
from application.privacy_reads import PiiReader, every_identifier, named_in_store
from application.privacy_requests import RequestRegister
from application.privacy_scan import BUYER_FIELDS, RECIPIENT_FIELDS, Json, last_activity, scan
from domain.ports import PersonalDataVault

DEAD_LETTER_PREFIX = "dead-letters:"  # + the UTC day: the vault subject sealing its letters


class Erasure(RequestRegister):
    """Crypto-shredding a subject's keys, on request or past their retention period."""

    def erase(self, subjects: list[str], request_id: str, operator: str) -> Json:
        """Destroy the keys first, then record the erasure: a retry after a crash completes it.
        Accountable: a registered operator acts on a registered erasure request of this
        subject, and the request is closed with the outcome."""
        reader = PiiReader(self.service, operator, "erasure request", "gdpr erase")
        named = named_in_store(self.service, subjects, reader)
        # A customer the index no longer knows has nothing in the store under that id (or
        # is named in clear, erased before): nothing to record, never their id written now.
        unknown = {n for n, stored in named.items() if stored is None}
        given = subjects
        subjects = every_identifier(self.records, [s or n for n, s in named.items()])
        done = self._check_request(request_id, [*given, *subjects], "erasure")
        if done is not None:
            return {**done, "replayed": True}
        keys = {s: self.service.vault.erase(s) for s in subjects}
        self._forget_rectifications([*given, *subjects])
        shredding = self.service.vault.finish_shredding(subjects)
        recorded = [
            self.app.record_subject_right(s, self._reference(request_id, s), "erasure")
            for s in subjects if s not in unknown
        ]
        # Recorded, the link from the person to their store id goes (not before: a retry
        # after a crash finds the subject again and completes the record).
        self.service.vault.forget_store_ids(subjects)
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
            "subject_ids": list(dict.fromkeys(reader.aliases.get(s, s) for s in subjects)),
            "operator": operator,
            "keys_destroyed": sum(keys.values()),
            "shredding": shredding,
            "already_erased": not any(keys.values()),
            "recorded": [r.recorded for r in recorded],
            "cards_as_buyer": [str(e.originator_id) for e in held.bought],
            "cards_as_recipient": [str(e.originator_id) for e in held.received],
            "fields_unreadable": unreadable,
            "retained": "amounts, dates, statuses, order ids and pseudonymous ids (P2: accounts)",
        }
        self._close_with(request_id, operator, outcome)
        return {**outcome, "replayed": False}

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
        # Everyone past the period, with keys or not (a customer who only redeemed): their
        # customer id no longer leads to their store id.
        forgotten = self.service.vault.forget_store_ids(
            sorted(s for s, at in last.items() if at < cutoff))
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
            "store_ids_forgotten": forgotten,
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
