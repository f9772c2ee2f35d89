"""Checkout use cases: what the order service's messages ask of the cards, in the caller's unit
of work, with typed results and the streams each one reads declared up front."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.card_base import PURCHASE_ORDER, REDEMPTION_ORDER, REFUND_REQUEST, iso
from application.cards import GiftCards
from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from application.unit_of_work import UnitOfWork
from domain.streams import stream_id

Json = dict[str, Any]


@dataclass(frozen=True)
class Result:
    """An accepted command's effect: `reply()` is what the results topic carries. A new card's
    code is never in it: the use case seals it into the delivery outbox (R7)."""

    def reply(self) -> Json:
        # Every field is flat (str, int, None): a copy of the instance's fields, not asdict's
        # recursive deep copy, which cost more than the rest of the reply per message.
        return dict(vars(self))


@dataclass(frozen=True)
class Ordered(Result):
    card_id: str
    amount: int
    currency: str
    market: str
    expires_at: str


@dataclass(frozen=True)
class Paid(Result):
    card_id: str
    applied: int
    remaining_to_pay: int
    forfeited: int
    currency: str


@dataclass(frozen=True)
class Returned(Result):
    card_id: str
    currency: str
    returned_amount: int
    to_other_method: int
    new_card_id: str | None
    to_new_card: int


@dataclass(frozen=True)
class Cancelled(Result):
    card_id: str
    currency: str
    refunded: int


class Checkout:
    """Gift cards bought, used, returned and cancelled through the order service."""

    def __init__(self, cards: GiftCards) -> None:
        self.cards = cards

    # --- what each command reads: one query loads a whole batch's keys ---------------

    def order_keys(self, order_id: str) -> list[UUID]:
        return [stream_id(PURCHASE_ORDER, order_id)]

    def pay_keys(
        self, order_id: str, customer_id: str | None, source: str, code: str
    ) -> list[UUID]:
        """The order's index, the subject's attempts window and the stream its refusal would
        take during a lock-out (R8), and the code's index."""
        return [
            stream_id(REDEMPTION_ORDER, order_id),
            *self.cards.attempt_ids(customer_id, source, order_id, self.cards.now()),
            self.cards.code_index_id(code),
        ]

    def return_keys(self, order_id: str, request_id: str) -> list[UUID]:
        return [stream_id(REDEMPTION_ORDER, order_id), stream_id(REFUND_REQUEST, request_id)]

    # --- commands ------------------------------------------------------------------------

    def order(self, uow: UnitOfWork, command: PurchaseCard) -> Ordered:
        """R1-R5: a card bought for an order; a repeat mails nothing."""
        card = self.cards.purchase(command, within=uow).card
        return Ordered(
            str(card.card_id), card.amount, card.currency, card.market, iso(card.expires_at)
        )

    def pay(self, uow: UnitOfWork, command: RedeemCard) -> Paid:
        """R6, R8-R14: an order paid with a card."""
        done = self.cards.redeem(command, within=uow)
        return Paid(
            str(done.card_id), done.applied, done.remaining_to_pay, done.forfeited, done.currency
        )

    def return_items(self, uow: UnitOfWork, command: RefundOrder) -> Returned:
        """R16-R18: a new card (the returning customer's, mailed to them) and/or the original
        method."""
        refund = self.cards.refund(command, within=uow)
        new_card = refund.new_card
        return Returned(
            str(refund.card_id), refund.currency, refund.returned_amount, refund.to_other_method,
            str(new_card.card_id) if new_card else None, new_card.amount if new_card else 0,
        )

    def cancel(self, uow: UnitOfWork, command: CancelCard) -> Cancelled:
        """R19/R20: by card id or by purchase order, in one call."""
        cancelled = self.cards.cancel(command, within=uow)
        return Cancelled(str(cancelled.card_id), cancelled.currency, cancelled.amount)
