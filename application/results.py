"""What the use cases answer: frozen, typed results; the entry points present them (JSON over
HTTP, the CLI's output)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.giftcard import CardFacts, GiftCard


@dataclass(frozen=True, slots=True)
class CardLookup:
    """A code's card as a checkout sees it: a used, cancelled or expired card covers nothing."""

    card_id: UUID
    status: str
    balance: int
    currency: str
    market: str
    expires_at: datetime
    code_last4: str

    @classmethod
    def of(cls, facts: CardFacts, now: datetime) -> CardLookup:
        status = facts.status_at(now)
        return cls(card_id=facts.card_id, status=status,
                   balance=facts.balance if status in ("active", "held") else 0,
                   currency=facts.currency, market=facts.market, expires_at=facts.expires_at,
                   code_last4=facts.code_last4)


@dataclass(frozen=True, slots=True)
class HoldState:
    """An order's hold: `held` with its amount and end; else `captured`, `released`, `voided`."""

    order_id: str
    card_id: UUID
    status: str
    currency: str | None = None
    balance: int | None = None
    amount: int | None = None
    held_until: datetime | None = None

    @classmethod
    def held(cls, card: GiftCard, order_id: str) -> HoldState:
        return cls(order_id=order_id, card_id=card.id, status="held", currency=card.currency,
                   balance=card.balance, amount=min(card.balance, card.held_order_total),
                   held_until=card.held_until)


@dataclass(frozen=True, slots=True)
class Redemption:
    """A card's single use (R11): what it paid of the order, what is left to pay, what is
    forfeited."""

    card_id: UUID
    order_id: str | None
    applied: int
    remaining_to_pay: int
    forfeited: int
    currency: str
    status: str

    @classmethod
    def of(cls, card: GiftCard) -> Redemption:
        return cls(card_id=card.id, order_id=card.used_on_order, applied=card.applied,
                   remaining_to_pay=card.order_total - card.applied,
                   forfeited=card.amount - card.applied, currency=card.currency,
                   status=card.status)


@dataclass(frozen=True, slots=True)
class HoldsReleased:
    """The sweep: how many holds past their time it released, as of when it ran."""

    as_of: datetime
    released: int


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A code's delivery whose last outcome is a permanent failure: the alert (R7)."""

    card_id: UUID
    kind: str
    reason: str
    detail: str
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRetry:
    """A delivery sent again: its attempt, and whether a previous address is told."""

    card_id: UUID
    status: str
    attempt: int
    previous_address_notified: bool


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """A card's code delivery as customer service sees it: how far it got, why it failed, how
    many times it was sent again (no address: that is personal data)."""

    card_id: UUID
    status: str | None
    failure: str | None
    attempt: int
