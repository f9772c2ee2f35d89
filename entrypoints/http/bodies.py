"""The API's request bodies: strict types, unknown fields refused, money in integer minor units."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

MAX_MONEY = 10**9

Text = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Code = Annotated[StrictStr, Field(min_length=1, max_length=64)]
MarketCode = Annotated[StrictStr, Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]
Money = Annotated[StrictInt, Field(gt=0, le=MAX_MONEY, description="integer minor units")]
OrderId = Annotated[str, Path(min_length=1, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupBody(Body):
    code: Code
    market: MarketCode
    customer_id: Text | None = None


class AuthorizeBody(Body):
    code: Code
    market: MarketCode
    order_total: Money
    customer_id: Text | None = None
    promo_codes: Annotated[list[Code], Field(max_length=20)] = []
    contains_gift_cards: StrictBool = False


class PurchaseBody(Body):
    order_id: Text
    market: MarketCode
    amount: Money
    payment_method: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    buyer_id: Text
    buyer_email: Annotated[StrictStr, Field(max_length=320)] | None = None
    buyer_name: Text | None = None
    recipient_email: Annotated[StrictStr, Field(max_length=320)] | None = None
    recipient_name: Text | None = None
    message: Annotated[StrictStr, Field(max_length=1000)] | None = None


class RefundBody(Body):
    order_id: Text
    amount: Money
    received_on: date
    request_id: Text | None = None
    # R17: the customer of the returned order owns the refund card and receives its e-mails.
    customer_id: Text | None = None
    customer_email: Annotated[StrictStr, Field(max_length=320)] | None = None
    customer_name: Text | None = None


class CancelBody(Body):
    """R20: the purchase order id AND the card's code, both checked."""

    order_id: Text
    code: Code
    card_id: UUID | None = None


# Headers and query parameters the commands share.
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Simulate = Annotated[bool, Query(description="the full decision, nothing stored")]
