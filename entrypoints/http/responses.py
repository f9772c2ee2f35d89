"""The API's answers as types: each 2xx body and the problem document, as OpenAPI shows them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

# Sent as the application writes them (no re-formatting on the way out), typed for clients.
Id = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
Instant = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Minor = Annotated[int, Field(description="integer minor units")]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Card(Answer):
    """A card as of now."""

    card_id: Id
    status: str = Field(description="active, held, redeemed, cancelled or expired")
    market: str
    currency: str
    amount: Minor
    balance: Minor
    purchased_at: Instant
    expires_at: Instant
    code_last4: str
    replaces: Id | None
    replaced_by: list[Id]


class CodeDelivery(Answer):
    """Where a card's code went (R7)."""

    delivery_id: Id | None
    by: str | None = Field(description="email, or null while it waits for customer service")
    status: str | None


class Purchase(Card):
    """A bought card: its code shown once (null on a repeat and on a dry run)."""

    code: str | None
    replayed: bool
    code_delivery: CodeDelivery
    simulated: bool = Field(False, description="present and true on a dry run (simulate)")


class Lookup(Answer):
    """A code's card on this market: a used, cancelled or expired card covers nothing."""

    card_id: Id
    status: str
    balance: Minor
    currency: str
    market: str
    expires_at: Instant
    code_last4: str


class Hold(Answer):
    """An order's hold: `held` with its amount and end, else `captured`, `released`, `voided`."""

    order_id: str
    card_id: Id
    status: str
    currency: str | None = None
    balance: Minor | None = None
    amount: Minor | None = None
    held_until: Instant | None = None
    simulated: bool = Field(False, description="present and true on a dry run (simulate)")


class Redemption(Answer):
    """A captured hold: the card's single use (R11: the remainder is forfeited)."""

    card_id: Id
    order_id: str | None
    applied: Minor
    remaining_to_pay: Minor
    forfeited: Minor
    currency: str
    status: str


class NewCard(Answer):
    card_id: Id
    code: str | None = Field(description="shown once: null on a replay and on a dry run")
    amount: Minor
    expires_at: Instant


class Refund(Answer):
    """R16-R18: the returned amount split between a new card and the other payment method."""

    order_id: str
    card_id: Id
    currency: str
    returned_amount: Minor
    new_card: NewCard | None
    to_other_method: Minor
    simulated: bool = Field(False, description="present and true on a dry run (simulate)")


class RefundTo(Answer):
    amount: Minor
    currency: str
    method: str


class Cancellation(Answer):
    card_id: Id
    status: str
    refund: RefundTo


class HistoryEvent(Answer):
    type: str
    version: int
    occurred_at: Instant
    recorded_at: Instant
    data: dict[str, Any]


class History(Answer):
    card_id: Id
    events: list[HistoryEvent]


class Sweep(Answer):
    as_of: Instant
    released: int


class MarketLiability(Answer):
    market: str
    currency: str
    outstanding: Minor
    open_cards: int


class Liability(Answer):
    as_of: Instant
    markets: list[MarketLiability]


class BreakageRow(Answer):
    market: str
    currency: str
    month: str
    after_use: Minor
    expired: Minor
    total: Minor


class Breakage(Answer):
    rows: list[BreakageRow]


class FraudAlert(Answer):
    alert_id: str
    rule: str
    severity: str
    card_id: Id | None
    customer_id: str | None
    event_ids: list[str]
    detected_at: Instant
    explanation: str
    legal_basis: str | None


class FraudAlerts(Answer):
    alerts: list[FraudAlert]


class Difference(Answer):
    card_id: Id
    version: int | None
    problem: str


class Verification(Answer):
    card_id: Id
    events: int
    ok: bool
    problems: list[Difference]


class Status(Answer):
    status: str


class FieldError(BaseModel):
    field: str
    type: str | None


class Problem(BaseModel):
    """RFC 9457 problem document: `code` is the stable code of the error catalogue."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    errors: list[FieldError] | None = None
