"""The use cases' typed results as the JSON objects the API and the CLI answer with."""

from __future__ import annotations

from typing import Any

from application.cards import iso
from application.results import (
    CardLookup,
    DeliveryRetry,
    FailedDelivery,
    HoldsReleased,
    HoldState,
    Redemption,
)

Json = dict[str, Any]


def lookup_json(found: CardLookup) -> Json:
    return {
        "card_id": str(found.card_id),
        "status": found.status,
        "balance": found.balance,
        "currency": found.currency,
        "market": found.market,
        "expires_at": iso(found.expires_at),
        "code_last4": found.code_last4,
    }


def hold_json(hold: HoldState) -> Json:
    """A hold as of now: its amount and end only while it is `held`."""
    shown: Json = {"order_id": hold.order_id, "card_id": str(hold.card_id), "status": hold.status}
    if hold.status == "held":
        shown |= {
            "currency": hold.currency,
            "balance": hold.balance,
            "amount": hold.amount,
            "held_until": None if hold.held_until is None else iso(hold.held_until),
        }
    return shown


def redemption_json(paid: Redemption) -> Json:
    return {
        "card_id": str(paid.card_id),
        "order_id": paid.order_id,
        "applied": paid.applied,
        "remaining_to_pay": paid.remaining_to_pay,
        "forfeited": paid.forfeited,
        "currency": paid.currency,
        "status": paid.status,
    }


def released_json(sweep: HoldsReleased) -> Json:
    return {"as_of": iso(sweep.as_of), "released": sweep.released}


def failed_deliveries_json(failed: list[FailedDelivery]) -> Json:
    """The alert: every delivery that failed for good, oldest first, and how many."""
    shown = [{"card_id": str(f.card_id), "kind": f.kind, "reason": f.reason, "detail": f.detail,
              "failed_at": iso(f.failed_at)} for f in failed]
    return {"failed": shown, "count": len(shown)}


def retry_json(retry: DeliveryRetry) -> Json:
    return {"card_id": str(retry.card_id), "status": retry.status, "attempt": retry.attempt,
            "previous_address_notified": retry.previous_address_notified}
