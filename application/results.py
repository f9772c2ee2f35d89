"""What the use cases answer: frozen, typed results; the entry points present them (JSON over
HTTP, the CLI's output)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
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


@dataclass(frozen=True, slots=True)
class CardView:
    """A card as it stands: its amount, balance, dates and the cards it replaces or is
    replaced by (a refund's new card)."""

    card_id: UUID
    status: str
    market: str
    currency: str
    amount: int
    balance: int
    purchased_at: datetime
    expires_at: datetime
    code_last4: str
    replaces: UUID | None
    replaced_by: tuple[UUID, ...]

    @classmethod
    def of(cls, card: GiftCard, status: str | None = None) -> CardView:
        """`status`: the card's status as a read tells it (`held`, `expired`), if not stored."""
        return cls(card_id=card.id, status=status or card.status, market=card.market,
                   currency=card.currency, amount=card.amount, balance=card.balance,
                   purchased_at=card.purchased_at, expires_at=card.expires_at,
                   code_last4=card.code_last4, replaces=card.replaces,
                   replaced_by=tuple(card.replaced_by))


@dataclass(frozen=True, slots=True)
class Purchase:
    """A card bought (R1-R5): its code only when this call created it; `replayed` for a
    repeated order id, whose code was shown once already."""

    card: CardView
    code: str | None
    replayed: bool

    @property
    def card_id(self) -> UUID:
        return self.card.card_id


@dataclass(frozen=True, slots=True)
class CardAsOf:
    """A card as it stood at a past instant, replayed from its events."""

    card: CardView
    as_of: datetime


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One fact of a card's history: its event's name, version, instants and data (the
    event's fields as JSON, personal data excluded)."""

    type: str
    version: int
    occurred_at: str
    recorded_at: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CardHistory:
    """A card's events, oldest first (the chain's bookkeeping left out)."""

    card_id: UUID
    events: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A card cancelled (R19/R20): its whole amount refunded to the original payment."""

    card_id: UUID
    status: str
    amount: int
    currency: str

    @classmethod
    def of(cls, card: GiftCard) -> Cancellation:
        return cls(card_id=card.id, status=card.status, amount=card.amount,
                   currency=card.currency)


@dataclass(frozen=True, slots=True)
class NewCard:
    """A refund's new card (R16): its code shown once, and mailed to its owner."""

    card_id: UUID
    code: str
    amount: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Refund:
    """A return (R16-R18): what comes back on a new card, what on the other payment method."""

    order_id: str
    card_id: UUID
    currency: str
    returned_amount: int
    new_card: NewCard | None
    to_other_method: int


@dataclass(frozen=True, slots=True)
class Expiry:
    """The expiry run (R9): how many cards expired as of when, and the balances forfeited per
    currency."""

    as_of: datetime
    expired: int
    forfeited: dict[str, int]


@dataclass(frozen=True, slots=True)
class SubjectRight:
    """A data subject's right recorded (or already recorded under this request id)."""

    subject_id: str
    request_id: str
    recorded: bool


@dataclass(frozen=True, slots=True)
class CodeDeliveryState:
    """Where a card's code went (R7): its delivery, how, and how far it got (no address)."""

    delivery_id: UUID | None
    by: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class HistorySealed:
    """A card's history chained after the fact (`audit seal`): its head as of the seal."""

    card_id: UUID
    sealed_at: datetime
    version: int
    head: str | None
