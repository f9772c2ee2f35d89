"""Publication under restriction (art. 18) and objection (P4): a subject's new events leave
with a one-off pseudonym, unlinkable to their other events; an erasure (P2) leaves naming no
one (docs/data-protection.md)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.cards import GiftCards
from application.ports import Pseudonyms
from domain.subjects import DataSubject
from infra.envelope import PSEUDONYMISED, stored_envelope

S = DataSubject
SUBJECT_TOPICS = [get_topic(c) for c in (S.ObjectedToProfiling, S.Restricted, S.RestrictionLifted)]
PAGE = 1000


def erasure_as_published(envelope: dict[str, Any], pseudonyms: Pseudonyms) -> dict[str, Any]:
    """P2: the erasure event carries no stable id of the person: a one-off subject pseudonym
    and a one-off stream (so its record key, partition aside, links it to none of their
    events). The service's own views see the stored event and rotate the pseudonym out."""
    event_id = envelope["event_id"]
    data = {**envelope["data"], "subject_id": pseudonyms.unlinked(event_id, "subject_id")}
    stream = pseudonyms.stream(UUID(event_id))
    return {**envelope, "stream_id": str(stream), "data": data}


class ProcessingLimits:
    """The periods, by published pseudonym, in which a subject was restricted (until lifted)
    or had objected (for good); read from the envelopes in store order, so a replay agrees."""

    def __init__(self, pseudonyms: Pseudonyms) -> None:
        self.pseudonyms = pseudonyms
        self.periods: dict[str, list[list[Any]]] = {}  # pseudonym -> [[kind, start, end]]

    @classmethod
    def from_store(cls, app: GiftCards, upto: int) -> ProcessingLimits:
        """The limits in force after position `upto` (the relay's start)."""
        limits, start = cls(app.pseudonyms), 1
        while start <= upto and (page := app.recorder.select_notifications(
                start, PAGE, stop=upto, topics=SUBJECT_TOPICS)):
            for notification in page:
                envelope = stored_envelope(app.mapper, notification, app.pseudonyms)
                if envelope is not None:
                    limits.see(envelope)
            start = page[-1].id + 1
        return limits

    def see(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Notes a right exercised; returns the envelope as it may be published."""
        kind, at = envelope["event_type"], envelope["occurred_at"]
        if kind == "SubjectErased":
            return erasure_as_published(envelope, self.pseudonyms)
        if kind.startswith("Subject"):  # the right itself is published under the pseudonym
            subject = envelope["data"].get("subject_id")
            periods = self.periods.setdefault(subject, [])
            if kind in ("SubjectRestricted", "SubjectObjectedToProfiling"):
                periods.append([kind, at, None])
            elif kind == "SubjectRestrictionLifted":
                for period in periods:
                    if period[0] == "SubjectRestricted" and period[2] is None:
                        period[2] = at
            return envelope
        return self._unlinked(envelope) if self.periods else envelope

    def limited(self, pseudonym: Any, at: str) -> bool:
        return any(start <= at and (end is None or at < end)
                   for _, start, end in self.periods.get(pseudonym, ()))

    def _unlinked(self, envelope: dict[str, Any]) -> dict[str, Any]:
        at, data = envelope["occurred_at"], dict(envelope["data"])
        for name, value in data.items():
            if PSEUDONYMISED.get(name) == "subject" and self.limited(value, at):
                data[name] = self.pseudonyms.unlinked(envelope["event_id"], name)
        pii = data.get("pii")
        if isinstance(pii, dict) and self.limited(pii.get("recipient_subject"), at):
            data["pii"] = {**pii, "recipient_subject": self.pseudonyms.unlinked(
                envelope["event_id"], "recipient_subject")}
        return {**envelope, "data": data}
