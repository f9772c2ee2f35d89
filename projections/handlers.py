"""Per-event handlers over the published envelope: balance, liability ledger, breakage, audit."""

from __future__ import annotations

from collections.abc import Callable

from infra.envelope import EnvelopeJson
from projections import fraud
from projections.audit import actor, chain_hash
from projections.batch import Batch, Key, Row
from projections.config import FraudConfig
from projections.schema import AUDIT, BALANCE, BREAKAGE, FRAUD_STATE, LEDGER, STREAMS, Table
from projections.timefmt import instant, norm

REQUIRED = {"event_id": str, "event_type": str, "stream_id": str, "card_version": int,
            "occurred_at": str, "data": dict}


class Rejected(Exception):
    """An envelope the views cannot take; the runner keeps it aside with this reason."""


def check(env: object) -> EnvelopeJson:
    """The envelope's shape, checked before any view is touched."""
    if not isinstance(env, dict):
        raise Rejected("not a JSON object")
    for name, kind in REQUIRED.items():
        if not isinstance(env.get(name), kind):
            raise Rejected(f"field {name!r} missing or not {kind.__name__}")
    try:
        instant(env["occurred_at"])  # remembered: the views read the same instant again
    except ValueError:
        raise Rejected("occurred_at is not an ISO-8601 instant") from None
    return env


Handler = Callable[[Batch, EnvelopeJson, "Row | None", FraudConfig], None]


def _ledger(b: Batch, env: EnvelopeJson, delta: int, open_delta: int) -> None:
    b.append(LEDGER, (env["card_id"], env["card_version"], env["market"], env["currency"],
                      norm(env["occurred_at"]), delta, open_delta))


def _forfeit(b: Batch, env: EnvelopeJson, column: str, amount: int) -> None:
    if amount <= 0:
        return
    b.add(BREAKAGE, {
        "market": env["market"], "currency": env["currency"],
        "month": b.zones.month_of(env["market"], env["occurred_at"]),
        "after_use": amount if column == "after_use" else 0,
        "expired": amount if column == "expired" else 0,
    })


def _close(b: Batch, env: EnvelopeJson, card: Row, status: str) -> None:
    """Redeemed, cancelled or expired: the whole balance leaves the liability."""
    _ledger(b, env, -card["balance"], -1 if card["status"] == "active" else 0)
    card["status"] = status
    card["balance"] = 0


def purchased(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    data = env["data"]
    row = {
        "card_id": env["card_id"], "status": "active", "market": env["market"],
        "currency": env["currency"], "amount": data["amount"], "balance": data["amount"],
        "purchased_at": norm(env["occurred_at"]), "expires_at": norm(data["expires_at"]),
        "buyer": data.get("buyer_subject"), "redeemed_by": None, "replaces": data.get("replaces"),
        "replaced_by": [], "refused_attempts": 0, "last_version": 0,
        "purchase_event_id": env["event_id"],
    }
    b.put(BALANCE, row)
    _ledger(b, env, data["amount"], 1)
    fraud.on_purchase(b, env, row, config)


def redeemed(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    assert card is not None
    card["redeemed_by"] = env["data"].get("customer_id")
    _close(b, env, card, "redeemed")
    _forfeit(b, env, "after_use", env["data"]["forfeited"])
    fraud.fast_cash_out(b, env, card, config)


def refused(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    assert card is not None
    card["refused_attempts"] += 1
    fraud.cross_market(b, env, card, config)


def cancelled(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    assert card is not None
    _close(b, env, card, "cancelled")
    fraud.cancel_after_attempt(b, env, card, config)


def refunded(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    assert card is not None
    new_card = env["data"].get("new_card_id")
    if new_card is not None:
        card["replaced_by"] = [*card["replaced_by"], new_card]


def expired(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    assert card is not None
    _close(b, env, card, "expired")
    _forfeit(b, env, "expired", env["data"]["forfeited"])


def nothing(b: Batch, env: EnvelopeJson, card: Row | None, config: FraudConfig) -> None:
    """Activation changes no figure (R4: cards are active from purchase); audit only."""


HANDLERS: dict[str, Handler] = {
    "GiftCardPurchased": purchased,
    "GiftCardActivated": nothing,
    "GiftCardRedeemed": redeemed,
    "GiftCardRedemptionRefused": refused,
    "GiftCardCancelled": cancelled,
    "GiftCardRefunded": refunded,
    "GiftCardExpired": expired,
    "CheckoutUnknownCodeTried": fraud.unknown_code,
    "CheckoutAttemptRefused": fraud.unknown_code,
    "SubjectErased": fraud.subject_erased,
    "SubjectObjectedToProfiling": fraud.subject_objected,
    "SubjectRestricted": fraud.subject_restricted,
    "SubjectRestrictionLifted": fraud.restriction_lifted,
}


def wanted(env: EnvelopeJson, config: FraudConfig) -> list[tuple[Table, Key]]:
    """Rows an envelope will read, fetched for a whole batch in a few queries."""
    keys: list[tuple[Table, Key]] = [(STREAMS, (env["stream_id"],))]
    if env.get("card_id"):
        keys.append((BALANCE, (env["card_id"],)))
        if env["event_type"] == "GiftCardPurchased":
            keys.extend((FRAUD_STATE, (k,)) for k in fraud.purchase_state_keys(env, config))
            keys.extend(fraud.profiling_rows(env["data"].get("buyer_subject")))
    elif env["event_type"] in ("CheckoutUnknownCodeTried", "CheckoutAttemptRefused"):
        key, customer, _ = fraud.unknown_code_key(env, config)
        keys.append((FRAUD_STATE, (key,)))
        keys.extend(fraud.profiling_rows(customer))
    return keys


def apply(b: Batch, env: EnvelopeJson, config: FraudConfig) -> bool:
    """Apply one envelope; False when its stream already went past it (redelivery)."""
    stream = b.get(STREAMS, env["stream_id"])
    if stream is not None and stream["version"] >= env["card_version"]:
        return False
    head = stream["head"] if stream else None
    handler = HANDLERS.get(env["event_type"])
    card = b.get(BALANCE, env["card_id"]) if env.get("card_id") else None
    if card is None and handler not in (None, purchased, nothing) and env.get("card_id"):
        raise Rejected(f"{env['event_type']} for card {env['card_id']} before its purchase")
    if handler is not None:
        handler(b, env, card, config)
    if env.get("card_id"):
        card = b.get(BALANCE, env["card_id"])
        if card is not None:
            card["last_version"] = env["card_version"]
            b.put(BALANCE, card)
        new_head = chain_hash(head, env)
        b.append(AUDIT, (
            env["card_id"], env["card_version"], env["event_id"], env["event_type"],
            norm(env["occurred_at"]), actor(env, card), env.get("correlation_id"),
            env.get("terms_version"), new_head, head,
        ))
        head = new_head
    b.put(STREAMS, {"stream_id": env["stream_id"], "version": env["card_version"], "head": head})
    return True
