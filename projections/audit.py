"""The audit trail: who did what to a card, chained by hashes an auditor can recompute."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

# Transport metadata, not part of the fact: the event store alone cannot give it back.
NOT_HASHED = ("position",)


def chain_hash(prev_hash: str | None, envelope: dict[str, Any]) -> str:
    """sha256(previous hash + canonical JSON of the envelope, keys sorted)."""
    fact = dict(envelope)  # copied in C, then the few keys left out (a comprehension is slower)
    for key in NOT_HASHED:
        fact.pop(key, None)
    digest = hashlib.sha256((prev_hash or "").encode())
    digest.update(orjson.dumps(fact, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def actor(envelope: dict[str, Any], card: dict[str, Any] | None) -> str:
    """The subject who acted: buyer, redeeming customer, or `system` for automatic steps."""
    kind = envelope["event_type"]
    data = envelope["data"]
    if kind == "GiftCardPurchased":
        return str(data.get("buyer_subject") or "system")
    if kind in ("GiftCardRedeemed", "GiftCardRedemptionRefused"):
        return str(data.get("customer_id") or "anonymous")
    if kind == "GiftCardCancelled" and card is not None:
        return str(card.get("buyer") or "system")
    if kind == "GiftCardRefunded" and card is not None:
        return str(card.get("redeemed_by") or "system")
    return "system"
