"""Data subjects: the record of their erasures (P2) and objections to profiling (P4), no PII."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Fact
from domain.streams import stream_id

# Rights requests are not taken under a market's gift card terms but under the privacy policy.
TERMS = "GDPR"


class RightExercised(Aggregate.Event, Fact):
    """A request of a data subject acted on; outside any market (`market`, `currency` None)."""

    subject_id: str
    request_id: str


class DataSubject(Aggregate):
    """One person (buyer's customer id or recipient pseudonym); each request id acts once."""

    # Nested names are the stored topics (`domain.subjects:DataSubject.Erased`).

    class Opened(Aggregate.Created):
        subject_id: str

    class Erased(RightExercised):
        pass

    class ObjectedToProfiling(RightExercised):
        pass

    @event(Opened)
    def __init__(self, *, subject_id: str) -> None:
        self.subject_id = subject_id
        self.erasures: list[str] = []
        self.objections: list[str] = []

    @classmethod
    def open(cls, subject_id: str) -> DataSubject:
        return cls._create(cls.Opened, id=cls.id_for(subject_id), subject_id=subject_id)

    @staticmethod
    def id_for(subject_id: str) -> UUID:
        return stream_id("subject", subject_id)

    @property
    def objects_to_profiling(self) -> bool:
        return bool(self.objections)

    def erase(self, *, request_id: str, at: datetime) -> bool:
        """P2: record that the subject's keys were destroyed; False if this request already was."""
        if request_id in self.erasures:
            return False
        self._record(self.Erased, request_id, at)
        return True

    def object_to_profiling(self, *, request_id: str, at: datetime) -> bool:
        """P4: from now on only compelling grounds (fraud, legal claims) justify processing."""
        if request_id in self.objections:
            return False
        self._record(self.ObjectedToProfiling, request_id, at)
        return True

    def _record(self, event_class: type[RightExercised], request_id: str, at: datetime) -> None:
        # Rights are exercised under the privacy policy, in no market.
        self.trigger_event(
            event_class, subject_id=self.subject_id, request_id=request_id, at=at,
            market=None, currency=None, terms_version=TERMS, correlation_id=request_id,
        )

    @event(Erased)
    def _erased(self, *, request_id: str) -> None:
        self.erasures.append(request_id)

    @event(ObjectedToProfiling)
    def _objected(self, *, request_id: str) -> None:
        self.objections.append(request_id)
