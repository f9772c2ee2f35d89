"""Data subjects: the record of their erasures (P2), objections (P4), rectifications and
restrictions (art. 16, 18), no PII."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Fact
from domain.errors import refuse
from domain.stored_names import stored_as
from domain.streams import stream_id

# Rights requests are not taken under a market's gift card terms but under the privacy policy.
TERMS = "GDPR"
# What a subject may have corrected (art. 16): the fields sealed under their key at purchase.
RECTIFIABLE = ("email", "name")


def rectified_field(name: str) -> str | None:
    """The rectifiable field a sealed value is (`buyer_email` -> `email`), if any."""
    kind = name.rsplit("_", 1)[-1]
    return kind if kind in RECTIFIABLE else None


class RightExercised(Aggregate.Event, Fact):
    """A request of a data subject acted on; outside any market (`market`, `currency` None)."""

    subject_id: str
    request_id: str


@stored_as("domain.subjects:DataSubject")
class DataSubject(Aggregate):
    """One person (buyer's customer id or recipient pseudonym); each request id acts once."""

    # Nested names are the stored topics (`domain.subjects:DataSubject.Erased`).

    class Opened(Aggregate.Created):
        subject_id: str

    class Erased(RightExercised):
        pass

    class ObjectedToProfiling(RightExercised):
        pass

    class Rectified(RightExercised):
        """Art. 16: a corrected value of `field` was sealed beside the store (never here)."""

        field: str

    class Restricted(RightExercised):
        """Art. 18: the data is kept but not processed (no profiling) until lifted."""

    class RestrictionLifted(RightExercised):
        """Art. 18(3): the restriction of `request_id`'s request ends (the subject is told)."""

    @event(Opened)
    def __init__(self, *, subject_id: str) -> None:
        self.subject_id = subject_id
        self.erasures: list[str] = []
        self.objections: list[str] = []
        self.rectifications: list[str] = []
        self.restrictions: list[str] = []  # request ids; the last one holds while restricted
        self.restricted = False

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

    def rectify(self, *, request_id: str, field: str, at: datetime) -> bool:
        """Art. 16: record that `field` was corrected; False if this request already was."""
        self.check_rectifiable(field)
        if request_id in self.rectifications:
            return False
        self._record(self.Rectified, request_id, at, field=field)
        return True

    def restrict(self, *, request_id: str, at: datetime) -> bool:
        """Art. 18: processing stops (storage only); False if already restricted by it."""
        if self.restricted and self.restrictions[-1] == request_id:
            return False
        self.check_not_restricted()
        self._record(self.Restricted, request_id, at)
        return True

    def lift_restriction(self, *, request_id: str, at: datetime) -> bool:
        """Art. 18(3): lift the restriction of that request; False if it already was."""
        if not self.restricted and request_id in self.restrictions:
            return False
        self.check_restricted_by(request_id)
        self._record(self.RestrictionLifted, request_id, at)
        return True

    @staticmethod
    def check_rectifiable(field: str) -> None:
        if field not in RECTIFIABLE:
            raise refuse("invalid_field", f"only {', '.join(RECTIFIABLE)} can be rectified")

    def check_not_restricted(self) -> None:
        if self.restricted:
            raise refuse("already_restricted", "processing is already restricted (another request)")

    def check_restricted_by(self, request_id: str) -> None:
        if not self.restricted or self.restrictions[-1] != request_id:
            raise refuse("not_restricted", "no restriction of this request is in force")

    def _record(
        self, event_class: type[RightExercised], request_id: str, at: datetime, **more: str
    ) -> None:
        # Rights are exercised under the privacy policy, in no market.
        self.trigger_event(
            event_class, subject_id=self.subject_id, request_id=request_id, at=at,
            market=None, currency=None, terms_version=TERMS, correlation_id=request_id, **more,
        )

    @event(Erased)
    def _erased(self, *, request_id: str) -> None:
        self.erasures.append(request_id)

    @event(ObjectedToProfiling)
    def _objected(self, *, request_id: str) -> None:
        self.objections.append(request_id)

    @event(Rectified)
    def _rectified(self, *, request_id: str) -> None:
        self.rectifications.append(request_id)

    @event(Restricted)
    def _restricted(self, *, request_id: str) -> None:
        self.restrictions.append(request_id)
        self.restricted = True

    @event(RestrictionLifted)
    def _lifted(self, *, request_id: str) -> None:
        self.restricted = False
