"""What is held about a person (P3, art. 15, 20): the export, lookups by e-mail and pseudonym."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from application.card_base import iso
from application.privacy_reads import (
    PiiReader,
    every_identifier,
    named_in_store,
    subjects_of_email,
)
from application.privacy_requests import RequestRegister
from application.privacy_scan import (
    BUYER_FIELDS,
    RECIPIENT_FIELDS,
    Holdings,
    Json,
    S,
    card_facts,
    facts,
    known_ids,
    scan,
    status_of,
)
from domain.errors import refuse
from domain.giftcard import GiftCard as G
from domain.ids import STORE_ID_PREFIX

WITHHELD = [
    "cards bought: the recipient's email and name (the recipient's data, sealed with their key)"
    " and what happened to the card after it was given (the recipient's use of it)",
    "cards received: the buyer's identity; the buyer's message is included (sent to you)",
]


UNLINKED = [
    "cards received under an erased e-mail: no longer linked to it (kept for the accounts, P2)"
]



class Exports(RequestRegister):
    """Reads about one person: their export, their subject id, their pseudonyms."""

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
            # The stream carries the store id's pseudonym (the customer id's for those named
            # in clear before store ids, or erased since).
            stored = named_in_store(self.service, [customer_id])[customer_id] or customer_id
            return {"customer_id": customer_id,
                    "pseudonym": self.service.pseudonyms.subject(stored)}
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
                # A store id leads back to no customer id (the index is one-way): it is what
                # the other rights take (`gdpr export s-…`).
                name = "store_id" if subject_id.startswith(STORE_ID_PREFIX) else "customer_id"
                return {"pseudonym": pseudonym, name: subject_id}
            if order_id is not None and pseudonyms.order(order_id) == pseudonym:
                reader.note(f"order:{order_id}", "pseudonym")
                reader.flush()
                return {"pseudonym": pseudonym, "order_id": order_id}
        raise refuse("unknown_pseudonym", f"no {kind.replace('_', ' ')} in the store has this "
                     "pseudonym")

    # --- access and portability (P3) --------------------------------------------------

    def export(
        self, subjects: list[str], reader: PiiReader,
        profiling: Callable[[list[str]], list[Json]] | None = None,
    ) -> Json:
        """Everything held about the subject and nothing about anyone else (see withheld);
        `profiling` gives the fraud alerts about them (the views, outside the store).
        Its shape is schemas/subject-export.json (art. 15, 20)."""
        given = subjects
        named = named_in_store(self.service, given, reader)
        subjects = every_identifier(self.records, [s or n for n, s in named.items()])
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
        log = self._access_log_rows(list(dict.fromkeys([*given, *subjects])))
        # The views hold pseudonyms (P5): asked by them, shown with the subject's own ids.
        published = {self.service.pseudonyms.subject(s): s for s in subjects}

        def as_named(pseudonym: str) -> str:
            subject_id = published.get(pseudonym, pseudonym)
            return reader.aliases.get(subject_id, subject_id)

        try:
            document = {
                "subject_ids": list(dict.fromkeys([*given, *subjects])),
                "generated_at": iso(self.app.now()),
                "cards_bought": [self._bought(e, held, reader) for e in held.bought],
                "cards_received": [self._received(e, held, reader) for e in held.received],
                "refund_cards": [self._refund_card(e, held, reader) for e in held.refund_cards],
                "holds": [facts(e, card_id=True) for e in held.holds],
                "profiling": [
                    {**a, "customer_id": as_named(a["customer_id"])}
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
                "requests": [r for s in dict.fromkeys([*given, *subjects])
                             for r in self.requests_of(s)],
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

    def _received(self, event: Any, held: Holdings, reader: PiiReader) -> Json:
        recipient = event.pii["recipient_subject"]
        return {
            **card_facts(event),
            "status": status_of(held.later[event.originator_id]),
            **{n: reader.open(recipient, event.pii.get(n), n) for n in RECIPIENT_FIELDS},
            # Written by the buyer (their key) but sent to this person, who already has it.
            "message": reader.open_message(event.buyer_subject, event.pii),
        }
