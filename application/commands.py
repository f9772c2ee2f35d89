"""The commands the use cases take: one frozen type per use case, each field named by the rule
it serves (the entry points decode their input into these; the use cases validate them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchaseCard:
    """R1-R5, R7, R21: buy one card for one order."""

    market: str  # R6: the market the card is bought on, and the only one it pays on
    amount: int  # R1: minor units of the market's currency, a preset or within the bounds
    payment_method: str  # R2: a bank card only
    order_id: str  # R3: the natural key, one card per purchase order; a repeat is the same card
    buyer_id: str | None = None  # R21: the buyer's customer id, the subject of their data
    buyer_email: str | None = None  # R7: where the code is e-mailed (sealed, R21)
    buyer_name: str | None = None  # R21: sealed under the buyer's key
    recipient_email: str | None = None  # R5/R7: the recipient's address (sealed under theirs)
    recipient_name: str | None = None  # R5: needs the recipient's e-mail
    message: str | None = None  # R5: the personal message, sealed for buyer and recipient


@dataclass(frozen=True, slots=True, kw_only=True)
class RedeemCard:
    """R6, R8-R14: pay an order with a card, once."""

    code: str  # R8: the bearer secret the customer typed
    market: str  # R6: the market of the order
    order_id: str  # R10: the natural key, one card per order; a retry is a no-op
    order_total: int  # R11/R12: minor units, positive; the rest is paid by another method
    source: str  # R8: the channel (`cli`, `checkout`, an API key's id): misses count against it
    customer_id: str | None = None  # R8: whom unknown codes count against, when named
    promo_codes: tuple[str, ...] = ()  # R13: no stacking with other discounts
    contains_gift_card: bool = False  # R13: a gift card never pays for a gift card


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundOrder:
    """R16-R18: goods paid by card returned: a new card and/or the other payment method."""

    order_id: str  # R16: the order paid with the card
    returned_amount: int  # R18: minor units of the returned goods, to the new card first
    received_on: date  # R16: the day the order was received; withdrawal within 30 days
    request_id: str | None = None  # R20: the request's id; a repeat of it is refused
    customer_id: str | None = None  # R17: the new card's owner (the paying customer)
    customer_email: str | None = None  # R17: where the new card's code is mailed (sealed)
    customer_name: str | None = None  # R21: sealed under the customer's key


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelCard:
    """R19/R20: cancel an unused card within 14 days, by its id or by its purchase order."""

    card_id: UUID | None = None  # R20: the card, or None when the purchase order names it
    code: str | None = None  # R20: when given, must be the card's own code
    order_id: str | None = None  # R20: the purchase order; when given, must be the card's
    correlation_id: str | None = None  # the request that asked it (its events carry it)


@dataclass(frozen=True, slots=True, kw_only=True)
class LookUpCard:
    """R8: the card of a typed code on a market, as of now."""

    code: str  # R8: the bearer secret typed
    market: str  # R6: a card of another market is answered as an unknown code
    source: str  # R8: the channel misses count against without a customer
    customer_id: str | None = None  # R8: whom unknown codes count against, when named


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizeHold:
    """R6, R8-R13: hold a card for an order until it is captured, voided or timed out."""

    code: str  # R8: the bearer secret typed
    market: str  # R6: the market of the order
    order_id: str  # R10: one card per order; repeating it returns the same hold
    order_total: int  # R11/R12: minor units, positive
    source: str  # R8: the channel misses count against
    customer_id: str | None = None  # R8: whom unknown codes count against, when named
    promo_codes: tuple[str, ...] = ()  # R13: no stacking with other discounts
    contains_gift_card: bool = False  # R13: a gift card never pays for a gift card


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureHold:
    """R11: the order's hold becomes the card's single use."""

    order_id: str  # the order the card is held for


@dataclass(frozen=True, slots=True, kw_only=True)
class VoidHold:
    """Releases the order's hold (the card is usable again)."""

    order_id: str  # the order the card is held for
