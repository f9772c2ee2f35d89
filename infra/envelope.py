"""The published form of card events (Kafka `giftcard.events` and projections): one envelope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import cache
from hashlib import sha1
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel, ConfigDict

from application.ports import Pseudonyms
from domain.base import DomainEvent
from domain.chain import CHAIN_FIELDS
from domain.giftcard import GiftCard
from domain.streams import CheckoutAttempts
from domain.subjects import DataSubject
from infra.orjsonpydantic import PydanticMapper, StoredState, class_version

# Aggregates whose events are published; indexes are private lookups and stay home.
PUBLISHED = {get_topic(GiftCard): "GiftCard", get_topic(CheckoutAttempts): "Checkout"}
PUBLISHED[get_topic(DataSubject)] = "Subject"
CONTENT_TYPE = "application/json"
# Fields lifted into the envelope, or that only make sense inside the store.
LIFTED = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "at",
    "market",
    "currency",
    "terms_version",
    "correlation_id",
    *CHAIN_FIELDS,  # the card's hash chain stays in the store (audit verify recomputes it)
}


# P5/R21: every field naming a customer, a data subject or an order, and
# how it is published: a keyed pseudonym of its kind (infra/pseudonyms.py). THE table: the
# envelope applies it, the schemas describe it, a test fails on a field named like one that
# is in neither this table nor ALLOWED. `pii.recipient_subject`: a key of the sealed dict.
PSEUDONYMISED = {
    "buyer_subject": "subject",
    "customer_id": "subject",
    "subject_id": "subject",
    "recipient_subject": "subject",
    "order_id": "order",
}
# Published as they are: an amount, and a reference to a rights request that carries no id.
ALLOWED = frozenset({"order_total", "request_id"})
# On card and checkout streams the correlation id is the order's id (or an internal reference
# such as an expiry's): published as an order pseudonym. A data subject's is its request's.
CORRELATED_BY_ORDER = frozenset({"GiftCard", "Checkout"})
# Schema version 1 published these ids in clear; every version from 2 on carries pseudonyms.
# The stored events did not change, so the published version is the stored class version + 1
# (no no-op upcasters, and a later stored version still maps to a new published one).
PSEUDONYMS_SINCE = 2


def published_version(cls: type[Any]) -> int:
    return class_version(cls) + PSEUDONYMS_SINCE - 1


class Envelope(BaseModel):
    """Every published message, whatever its event type."""

    model_config = ConfigDict(extra="forbid", title="GiftCardsEnvelope")

    event_id: UUID
    event_type: str
    schema_version: int
    card_id: UUID | None
    stream_id: UUID
    card_version: int
    position: int
    occurred_at: datetime
    recorded_at: datetime
    market: str | None
    currency: str | None
    terms_version: str | None
    correlation_id: str | None
    data: dict[str, Any]


# An Envelope as the views receive it: decoded JSON, checked by projections.handlers.check.
EnvelopeJson = dict[str, Any]


def published_events() -> Iterator[tuple[str, str, type[DomainEvent]]]:
    """(aggregate prefix, event type, class) of every event class that to_envelope publishes."""
    for topic, prefix in PUBLISHED.items():
        aggregate = resolve_topic(topic)
        for name, member in vars(aggregate).items():
            # Stream bookkeeping events (Opened) carry no `at` and are never published.
            if (
                isinstance(member, type)
                and issubclass(member, DomainEvent)
                and get_topic(member).startswith(topic + ".")
                and "at" in member.model_fields
            ):
                yield prefix, f"{prefix}{name}", member


@cache
def published_topics() -> list[str]:
    """Stored-event topics of published events: the relay reads only those from the store."""
    return [get_topic(cls) for _, _, cls in published_events()]


def event_id(originator_id: UUID, version: int) -> str:
    """Deterministic: the same stored event always has the same id, however often relayed.
    `str(uuid5(originator_id, str(version)))`, formatted without two UUID objects per event."""
    digest = bytearray(sha1(originator_id.bytes + str(version).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_envelope(
    event: DomainEventProtocol[Any], position: int, pseudonyms: Pseudonyms
) -> dict[str, Any] | None:
    """Envelope of a domain event, or None when the event is not published."""
    fields = cast(Any, event).model_dump(mode="json")
    return _envelope(type(event), event.originator_id, event.originator_version, fields, position,
                     pseudonyms)


def stored_envelope(
    mapper: Mapper[Any], stored: Notification, pseudonyms: Pseudonyms,
    state: StoredState | None = None,
) -> dict[str, Any] | None:
    """Envelope of a stored event, from its stored JSON fields: the relay's and the store
    rebuild's hot path skips building a pydantic event unless an upcaster changed the fields.
    `state`: what `mapper.to_state(stored)` gave, when the caller decoded it already."""
    assert isinstance(mapper, PydanticMapper)  # the composition root installs it
    cls, fields, upcast = state or mapper.to_state(stored)
    originator_id = cast(UUID, stored.originator_id)  # both recorders give back UUIDs
    if upcast:  # let the model validate and normalise what the upcasters produced
        fields.pop("chain_mac", None)
        event = cls(**fields, originator_id=originator_id,
                    originator_version=stored.originator_version)
        fields = event.model_dump(mode="json")
    return _envelope(cls, originator_id, stored.originator_version, fields, stored.id,
                     pseudonyms)


def _envelope(
    cls: type[Any],
    originator_id: UUID,
    version: int,
    fields: dict[str, Any],
    position: int,
    pseudonyms: Pseudonyms,
) -> dict[str, Any] | None:
    prefix, event_type, schema_version = _published_as(cls)
    if prefix is None or "at" not in fields:  # private, or stream bookkeeping (Opened)
        return None
    if prefix != "GiftCard":  # streams named after a customer: a keyed id (see stream())
        originator_id = pseudonyms.stream(originator_id)
    stream_id = str(originator_id)
    correlation_id = fields.get("correlation_id")
    if correlation_id is not None and prefix in CORRELATED_BY_ORDER:
        correlation_id = pseudonyms.order(correlation_id)
    return {
        "event_id": event_id(originator_id, version),
        "event_type": event_type,
        "schema_version": schema_version,
        "card_id": stream_id if prefix == "GiftCard" else None,
        "stream_id": stream_id,
        "card_version": version,
        "position": position,
        "occurred_at": fields.get("at"),
        "recorded_at": fields["timestamp"],
        "market": fields.get("market"),
        "currency": fields.get("currency"),
        "terms_version": fields.get("terms_version"),
        "correlation_id": correlation_id,
        "data": _pseudonymised(
            {k: v for k, v in fields.items() if k not in LIFTED}, pseudonyms
        ),
    }


def card_record_as_published_now(
    envelope: dict[str, Any], pseudonyms: Pseudonyms
) -> dict[str, Any]:
    """A card event's record published before the pseudonyms (schema version 1, ids in clear)
    as it is published now: `audit verify --all` compares the store with such old records too."""
    if envelope.get("schema_version", PSEUDONYMS_SINCE) >= PSEUDONYMS_SINCE:
        return envelope
    correlation_id = envelope.get("correlation_id")
    return {
        **envelope,
        "schema_version": envelope["schema_version"] + PSEUDONYMS_SINCE - 1,
        "correlation_id": None if correlation_id is None else pseudonyms.order(correlation_id),
        "data": _pseudonymised(dict(envelope.get("data", {})), pseudonyms),
    }


def _pseudonymised(data: dict[str, Any], pseudonyms: Pseudonyms) -> dict[str, Any]:
    for name, value in data.items():
        if value is None:
            continue
        kind = PSEUDONYMISED.get(name)
        if kind == "subject":
            data[name] = pseudonyms.subject(value)
        elif kind == "order":
            data[name] = pseudonyms.order(value)
        elif name == "pii" and "recipient_subject" in value:
            data[name] = {**value, "recipient_subject": pseudonyms.subject(
                value["recipient_subject"])}
    return data


def _published_as(cls: type[Any]) -> tuple[str | None, str, int]:
    """(aggregate prefix `GiftCard`/`Checkout`/`Subject`, or None for private events; event
    type; schema version) of an event class, computed once per class."""
    known = _PUBLISHED_AS.get(cls)
    if known is None:
        prefix = PUBLISHED.get(get_topic(cls).rsplit(".", 1)[0])
        known = (prefix, f"{prefix}{cls.__name__}", published_version(cls))
        _PUBLISHED_AS[cls] = known
    return known


_PUBLISHED_AS: dict[type[Any], tuple[str | None, str, int]] = {}
