"""Small aggregates beside the cards: natural-key indexes and unknown-code attempts."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import TypedDict, Unpack
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from domain.base import Aggregate, MarketFact
from domain.stored_names import stored_as

_NAMESPACE = uuid5(NAMESPACE_URL, "urn:giftcards")


@lru_cache(maxsize=65_536)  # a checkout message asks for the same few ids many times
def stream_id(kind: str, key: str) -> UUID:
    """Deterministic id for a natural key, so that a second writer of the key conflicts."""
    return uuid5(_NAMESPACE, f"{kind}:{key}")


@stored_as("domain.streams:Index")
class Index(Aggregate):
    """Maps a natural key (order id, code HMAC) to a card; the key itself is not stored."""

    class Registered(Aggregate.Created):  # stored topic `domain.streams:Index.Registered`
        target: UUID

    @event(Registered)
    def __init__(self, *, target: UUID) -> None:
        self.target = target

    @classmethod
    def register(cls, kind: str, key: str, target: UUID) -> Index:
        return cls._create(cls.Registered, id=stream_id(kind, key), target=target)


class Where(TypedDict):
    """Where and when an attempt was made, as its command receives it."""

    order_id: str
    market: str
    currency: str
    at: datetime
    terms_version: str
    correlation_id: str


class AttemptEvent(Aggregate.Event, MarketFact):
    """An attempt refused before any card was involved. It names the customer (or source), so
    that views never need the stream's state (F1, P4)."""

    customer_id: str
    order_id: str


@stored_as("domain.streams:CheckoutAttempts")
class CheckoutAttempts(Aggregate):
    """Redemption attempts refused before any card was involved (R8, fraud rule F1).

    One stream per subject (a customer, or `source:NAME` without one) and fixed window, so that
    no stream grows past the guessing limit; an attempt refused during a lock-out gets a stream
    of its own. Streams of the old layout hold every unknown code of one customer: they
    are still read (views, exports), never written again."""

    # Nested names are the stored topics (`domain.streams:CheckoutAttempts.UnknownCodeTried`).

    class Opened(Aggregate.Created):
        customer_id: str

    class UnknownCodeTried(AttemptEvent):
        pass

    class AttemptRefused(AttemptEvent):
        reason: str

    @event(Opened)
    def __init__(self, *, customer_id: str) -> None:
        self.customer_id = customer_id
        self.unknown_codes = 0

    @classmethod
    def open(cls, customer_id: str, stream: UUID) -> CheckoutAttempts:
        return cls._create(cls.Opened, id=stream, customer_id=customer_id)

    @staticmethod
    def id_for(customer_id: str) -> UUID:
        """The stream of the old layout: every attempt of one customer."""
        return stream_id("attempts", customer_id)

    @staticmethod
    def window_id(subject: str, window_start: datetime) -> UUID:
        """The unknown codes a subject tried in the window starting at `window_start`."""
        return stream_id("attempts-window", f"{subject}|{window_start.isoformat()}")

    @staticmethod
    def refusal_id(subject: str, window_start: datetime, order_id: str) -> UUID:
        """One locked-out attempt: keyed by its order, so a retry records nothing twice."""
        return stream_id("attempts-refused", f"{subject}|{window_start.isoformat()}|{order_id}")

    def record_unknown_code(self, **where: Unpack[Where]) -> None:
        """The typed code is deliberately not recorded: a near-miss is still a secret."""
        self.trigger_event(self.UnknownCodeTried, customer_id=self.customer_id, **where)

    @event(UnknownCodeTried)
    def _unknown_code_tried(self) -> None:
        self.unknown_codes += 1

    def record_refusal(self, *, customer_id: str, reason: str, **where: Unpack[Where]) -> None:
        """Refused unchecked (`too_many_attempts`): nothing says whether the code exists."""
        self.trigger_event(self.AttemptRefused, customer_id=customer_id, reason=reason, **where)
