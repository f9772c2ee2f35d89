"""The `order.checkout` input contract: strict pydantic models of the four message types."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from consumers.dead_letters import Invalid, from_validation, peek, plain
from consumers.scan import MAX_DEPTH, MAX_VALUE_BYTES, too_deep
from domain.codes import contains_code
from domain.errors import DomainError
from domain.markets import Markets

Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[ -~]+$")]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[ -~]+$")]
MarketCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Minor = Annotated[int, Field(gt=0, lt=10**15)]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class MessageHeader(Strict):
    """What every message of the order service carries."""

    message_id: Id
    occurred_at: datetime


class Buyer(Strict):
    customer_id: Subject
    email: Email | None = None
    name: Name | None = None


class Recipient(Strict):
    email: Email
    name: Name | None = None


class GiftCardOrdered(MessageHeader):
    type: Literal["GiftCardOrdered"]
    order_id: Id
    market: MarketCode
    amount: Minor
    currency: Currency
    payment_method: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    buyer: Buyer
    recipient: Recipient | None = None
    message: Annotated[str, StringConstraints(max_length=1000)] | None = None


class CheckoutCompleted(MessageHeader):
    type: Literal["CheckoutCompleted"]
    order_id: Id
    market: MarketCode
    customer_id: Subject
    order_total: Minor
    currency: Currency
    gift_card_code: Code
    promo_codes: Annotated[list[Code], Field(max_length=20)] = []
    contains_gift_cards: bool = False


class OrderItemsReturned(MessageHeader):
    type: Literal["OrderItemsReturned"]
    order_id: Id
    market: MarketCode
    returned_amount: Minor
    received_on: date


class GiftCardCancellationRequested(MessageHeader):
    type: Literal["GiftCardCancellationRequested"]
    card_id: UUID | None = None
    order_id: Id | None = None
    code: Code | None = None

    @model_validator(mode="after")
    def _names_a_card(self) -> GiftCardCancellationRequested:
        if self.card_id is None and self.order_id is None:
            raise ValueError("card_id or order_id is required")
        return self


CheckoutMessage = Annotated[
    GiftCardOrdered | CheckoutCompleted | OrderItemsReturned | GiftCardCancellationRequested,
    Field(discriminator="type"),
]
MESSAGE = TypeAdapter(CheckoutMessage)
TYPES = frozenset(("GiftCardOrdered", "CheckoutCompleted", "OrderItemsReturned",
                   "GiftCardCancellationRequested"))
# Fields allowed to carry a gift card code; a code anywhere else is refused (and redacted).
# Names, e-mails and the personal message are sealed as PII: a code there is the buyer's business.
CODE_FIELDS = frozenset({"gift_card_code", "code"})
SEALED_FIELDS = frozenset({"message", "name", "email"})


def parse(raw: bytes | None, markets: Markets) -> CheckoutMessage:
    """The validated message, or `Invalid` with a stable reason (never quoting the input)."""
    if raw is None or not raw:
        raise Invalid("empty", "no value")
    # Checked before any recursive parser sees the input (orjson, pydantic and json recurse);
    # iterative, and cheap even over the topic's largest value.
    if too_deep(raw):
        raise Invalid("too_deep", f"nested deeper than {MAX_DEPTH} levels")
    if len(raw) > MAX_VALUE_BYTES:
        raise Invalid("oversized", f"{len(raw)} bytes, limit {MAX_VALUE_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("not_utf8", "value is not UTF-8") from None
    _refuse_duplicate_keys(raw)
    try:
        message: CheckoutMessage = MESSAGE.validate_json(raw)
    except ValidationError as error:
        raise from_validation(error) from None
    misplaced = _code_outside_code_fields(message.model_dump(mode="json"), "")
    if misplaced:
        raise Invalid("code_in_wrong_field", f"{misplaced}: looks like a gift card code")
    if not isinstance(message, GiftCardCancellationRequested):
        try:
            market = markets.get(message.market)
        except DomainError:
            raise Invalid("unknown_market", "market: not a configured market") from None
        currency = getattr(message, "currency", market.currency)
        if currency != market.currency:
            raise Invalid("currency_mismatch", f"currency: the {market.code} market uses another")
    return message


def _code_outside_code_fields(value: Any, path: str) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in CODE_FIELDS or key in SEALED_FIELDS:
                continue
            found = _code_outside_code_fields(item, f"{path}.{key}" if path else key)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _code_outside_code_fields(item, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(value, str) and contains_code(value):
        return path
    return None


def _refuse_duplicate_keys(raw: bytes) -> None:
    # Parsers keep the last of two equal keys: "order_total" twice would pass with the second.
    # Fast path: with no backslash, every quote delimits a string, and a key given twice
    # leaves fewer strings in orjson's result than in the bytes.
    try:
        if b"\\" not in raw and raw.count(b'"') == 2 * _strings_in(orjson.loads(raw)):
            return
    except orjson.JSONDecodeError:
        pass  # orjson is stricter than pydantic (lone surrogates): the slow path decides
    try:
        # Numbers are not needed here: skipping their conversion skips int's 4,300-digit limit.
        json.loads(raw, object_pairs_hook=_unique, parse_int=len, parse_float=len)
    except _Duplicate as duplicate:
        raise Invalid("duplicate_key", f"{duplicate.path}: given twice") from None
    except ValueError:
        pass  # not JSON: pydantic names the reason


def _strings_in(value: Any) -> int:
    """Keys and string values at any depth."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            stack += item.values()
        elif type(item) is list:
            stack += item
        elif type(item) is str:
            count += 1
    return count


class _Duplicate(Exception):
    def __init__(self, path: str) -> None:
        self.path = path


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(plain(key) or "a key")
            seen.add(key)
    return value


def rejected(raw: bytes | None, invalid: Invalid) -> dict[str, Any] | None:
    """The reply to a refused input that shows a publishable message id (None: it shows none)."""
    message_id = peek(raw, "message_id")
    if message_id is None:
        return None
    kind = peek(raw, "type")
    return {
        "message_id": message_id,
        "type": kind if kind in TYPES else None,
        "order_id": peek(raw, "order_id"),
        "status": "rejected",
        "reason": invalid.reason,
        "card_id": None,
    }
