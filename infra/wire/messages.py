"""The `order.checkout` input contract: strict pydantic models of the four message types."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from domain.addresses import ADDR_SPEC, MAX_LENGTH
from domain.codes import contains_code
from domain.errors import DomainError
from domain.ids import ID_PATTERN, MAX_ID
from domain.markets import Markets
from infra.wire.dead_letters import EMAIL, Invalid, from_validation, peek, plain
from infra.wire.scan import MAX_DEPTH, MAX_VALUE_BYTES, duplicate_key, too_deep

# Ids, as on every path (domain.ids): a value refused here is dead-lettered `invalid_id`.
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]
Subject = Id
MarketCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Email = Annotated[  # the domain's one check of an address (RFC 5322 addr-spec)
    str, StringConstraints(min_length=3, max_length=MAX_LENGTH, pattern=f"^{ADDR_SPEC}$")
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
    # R17: the customer of the returned order, who owns the refund card and receives its
    # e-mails. Optional for messages written before it: without an e-mail the card waits for
    # customer service, never mailed to anyone else.
    customer: Buyer | None = None


class GiftCardCancellationRequested(MessageHeader):
    type: Literal["GiftCardCancellationRequested"]
    # R20: the purchase order id AND the card's code, both checked; the card id is optional.
    card_id: UUID | None = None
    order_id: Id
    code: Code


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
# Fields of the type Id: refused `invalid_id`, as over HTTP and in the CLI.
ID_FIELDS = frozenset({"message_id", "order_id", "customer_id"})
# Published in clear: never an e-mail address (P5).
PUBLISHED_ID_FIELDS = ("message_id", "order_id", "customer_id", "payment_method")


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
        raise from_validation(error, ID_FIELDS) from None
    fields = message.model_dump(mode="json")
    misplaced = _code_outside_code_fields(fields, "")
    if misplaced:
        raise Invalid("code_in_wrong_field", f"{misplaced}: looks like a gift card code")
    if (exposed := _email_in_published_field(fields)) is not None:
        raise Invalid("personal_data_in_field", f"{exposed}: looks like an e-mail address")
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


def _email_in_published_field(fields: dict[str, Any]) -> str | None:
    """P5: ids travel in clear (events, replies, correlation ids); an e-mail address used as
    one would reach giftcard.events and stay there for ever. Only the sealed fields may hold one."""
    buyer = fields.get("buyer") or {}
    customer = fields.get("customer") or {}
    candidates = {
        **{name: fields.get(name) for name in PUBLISHED_ID_FIELDS},
        "buyer.customer_id": buyer.get("customer_id"),
        "customer.customer_id": customer.get("customer_id"),
    }
    for path, value in candidates.items():
        if isinstance(value, str) and EMAIL.search(value):
            return path
    return None


def _refuse_duplicate_keys(raw: bytes) -> None:
    key = duplicate_key(raw)
    if key is not None:
        raise Invalid("duplicate_key", f"{plain(key) or 'a key'}: given twice")


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
