"""The per-card hash chain: each event hashes its predecessor's hash and every field of its own;
the application seals each link with a keyed MAC under a chain key the database never holds."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from eventsourcing.utils import get_topic
from pydantic import BaseModel

# The chain's own fields and the mapper's version marker: never part of what is hashed.
CHAIN_FIELDS = frozenset({"prev_hash", "event_hash", "chain_mac"})
NOT_HASHED = CHAIN_FIELDS | {"class_version"}
DOMAIN = b"giftcards-chain-v1\n"
MAC_DOMAIN = b"giftcards-chain-mac-v1\n"


def link(prev_hash: str | None, topic: str, fields: dict[str, Any]) -> str:
    """sha256(domain tag, predecessor's hash, event type, canonical JSON of every field).

    `fields` are the event's JSON fields as stored (`model_dump(mode="json")`, with
    `originator_id` as a string and `originator_version`), keys sorted: the same bytes whether
    computed by the aggregate that records the event or by an auditor from the stored row."""
    digest = hashlib.sha256(DOMAIN)
    digest.update((prev_hash or "").encode() + b"\n" + topic.encode() + b"\n")
    digest.update(
        orjson.dumps(
            {k: v for k, v in fields.items() if k not in NOT_HASHED}, option=orjson.OPT_SORT_KEYS
        )
    )
    return digest.hexdigest()


def event_link(prev_hash: str | None, event: BaseModel) -> str:
    """The chain hash of a domain event, as `link` computes it from its stored form."""
    return link(prev_hash, get_topic(type(event)), event.model_dump(mode="json"))


def link_mac(key: bytes, event_hash: str) -> str:
    """HMAC-SHA256 under the chain key of (MAC domain tag, the event's chain hash): the hash
    covers the predecessor and every field, so whoever lacks the key cannot forge, edit or
    re-chain an event without a MAC that fails."""
    return hmac.new(key, MAC_DOMAIN + event_hash.encode(), hashlib.sha256).hexdigest()
