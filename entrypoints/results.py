"""The use cases' typed results as the JSON objects the API and the CLI answer with."""

from __future__ import annotations

from typing import Any

from application.card_base import iso
from application.results import (
    Cancellation,
    CardAsOf,
    CardHistory,
    CardLookup,
    CardView,
    CodeDeliveryState,
    DeliveryRetry,
    Expiry,
    FailedDelivery,
    HistorySealed,
    HoldsReleased,
    HoldState,
    Purchase,
    Redemption,
    Refund,
    SubjectRight,
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


def card_json(card: CardView) -> Json:
    return {
        "card_id": str(card.card_id),
        "status": card.status,
        "market": card.market,
        "currency": card.currency,
        "amount": card.amount,
        "balance": card.balance,
        "purchased_at": iso(card.purchased_at),
        "expires_at": iso(card.expires_at),
        "code_last4": card.code_last4,
        "replaces": str(card.replaces) if card.replaces else None,
        "replaced_by": [str(i) for i in card.replaced_by],
    }


def purchase_json(bought: Purchase) -> Json:
    return {**card_json(bought.card), "code": bought.code, "replayed": bought.replayed}


def card_as_of_json(past: CardAsOf) -> Json:
    return {**card_json(past.card), "as_of": iso(past.as_of)}


def history_json(history: CardHistory) -> Json:
    return {
        "card_id": str(history.card_id),
        "events": [
            {"type": e.type, "version": e.version, "occurred_at": e.occurred_at,
             "recorded_at": e.recorded_at, "data": e.data}
            for e in history.events
        ],
    }


def cancellation_json(cancelled: Cancellation) -> Json:
    return {
        "card_id": str(cancelled.card_id),
        "status": cancelled.status,
        "refund": {"amount": cancelled.amount, "currency": cancelled.currency,
                   "method": "original_payment"},
    }


def refund_json(refund: Refund) -> Json:
    new = refund.new_card
    return {
        "order_id": refund.order_id,
        "card_id": str(refund.card_id),
        "currency": refund.currency,
        "returned_amount": refund.returned_amount,
        "new_card": None if new is None else {
            "card_id": str(new.card_id),
            "code": new.code,
            "amount": new.amount,
            "expires_at": iso(new.expires_at),
        },
        "to_other_method": refund.to_other_method,
    }


def expiry_json(run: Expiry) -> Json:
    return {"as_of": iso(run.as_of), "expired": run.expired, "forfeited": dict(run.forfeited)}


def subject_right_json(right: SubjectRight) -> Json:
    return {"subject_id": right.subject_id, "request_id": right.request_id,
            "recorded": right.recorded}


def code_delivery_json(delivery: CodeDeliveryState) -> Json:
    return {"delivery_id": None if delivery.delivery_id is None else str(delivery.delivery_id),
            "by": delivery.by, "status": delivery.status}


def sealed_json(sealed: HistorySealed) -> Json:
    # `isoformat()`, not `iso()`: the seal's output has always spelled the offset `+00:00`.
    return {"card_id": str(sealed.card_id), "sealed_at": sealed.sealed_at.isoformat(),
            "version": sealed.version, "head": sealed.head}
