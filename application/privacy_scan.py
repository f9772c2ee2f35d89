"""One pass over the log for the events naming a person, their ids and last activity."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventsourcing.utils import get_topic

from application.card_base import iso
from application.cards import GiftCards
from application.ports import PrivacyRecords, Pseudonyms, SubjectVault
from domain.giftcard import GiftCard
from domain.ids import RECIPIENT_PREFIX
from domain.streams import CheckoutAttempts
from domain.subjects import DataSubject

Json = dict[str, Any]
BUYER_FIELDS = ("buyer_email", "buyer_name", "message")  # sealed under the buyer's key
RECIPIENT_FIELDS = ("recipient_email", "recipient_name")  # sealed under the recipient's key
PAGE = 500

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


def clear_customer_ids(service: Service) -> list[str]:
    """The customers the store's events name in clear (written before store ids), oldest
    first, but not those whose last word was their erasure (they come back as new people)."""
    app, named = service.app, dict[str, None]()
    topics = [get_topic(cls) for cls in SCANNED]
    start = 1
    while page := app.recorder.select_notifications(start, PAGE, topics=topics):
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            if type(event) is S.Erased:
                named.pop(event.subject_id, None)
                continue
            for name in SUBJECT_FIELDS:
                value = getattr(event, name, None)
                if value and not value.startswith((RECIPIENT_PREFIX, "source:")):  # not people
                    named[value] = None
        start = page[-1].id + 1
    return list(named)


def seed_store_ids(service: Service) -> None:
    """Once, before any store id is given: customers named in clear keep their id (P2)."""
    if not service.vault.store_ids_seeded():
        service.vault.seed_store_ids(clear_customer_ids(service))


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
