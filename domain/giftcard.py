"""The gift card aggregate: every rule of the terms (R1-R20) as checks and past-tense events.

Long because it is one aggregate: the library's idiom keeps each event class beside the method
that records it, inside the aggregate's class, so its rules read together in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Chained, MarketFact
from domain.calendar import add_months, cancellation_deadline, withdrawal_deadline
from domain.errors import refuse
from domain.markets import Market
from domain.stored_names import stored_as

Status = Literal["active", "redeemed", "cancelled", "expired"]


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What a lookup shows of a card, as of its last event: kept beside the events in the same
    transaction, so a checkout lookup reads one row instead of replaying the card."""

    card_id: UUID
    status: str
    balance: int
    currency: str
    market: str
    expires_at: datetime
    held_until: datetime | None
    code_last4: str

    def status_at(self, now: datetime) -> str:
        """`expired` from the first instant past validity (R9), `held` while a hold lasts."""
        if self.status == "active" and now >= self.expires_at:
            return "expired"
        if self.status == "active" and self.held_until is not None and now < self.held_until:
            return "held"
        return self.status

    def hold_timed_out_at(self, now: datetime) -> bool:
        """A hold past its time, not yet released: reading the card must release it first."""
        return self.held_until is not None and now >= self.held_until


class CardEvent(Chained, Aggregate.Event, MarketFact):
    """An event of one card, in the card's own market and currency, in the card's chain."""


@stored_as("domain.giftcard:GiftCard")
class GiftCard(Aggregate):
    """A prepaid, single-use, single-market card (terms of 19 Nov 2025)."""

    # Events, past tense. Their nested names are their stored topics
    # (`domain.giftcard:GiftCard.Purchased`): renaming one orphans the stored events.

    class Purchased(CardEvent, Aggregate.Created):
        amount: int
        expires_at: datetime
        payment_method: Literal["card", "refund"]
        code_last4: str
        buyer_subject: str | None
        pii: dict[str, str]  # sealed with the subject's key (R21): erasure makes it unreadable
        replaces: UUID | None

    class Activated(CardEvent):
        pass

    class Redeemed(CardEvent):
        order_id: str
        order_total: int
        applied: int
        remaining_to_pay: int  # R12: paid by another method
        forfeited: int  # R11: lost, never refunded or re-credited
        customer_id: str | None

    class RedemptionRefused(CardEvent):
        order_id: str
        reason: str
        attempted_market: str
        customer_id: str | None

    class Expired(CardEvent):
        forfeited: int

    class Cancelled(CardEvent):
        refund_amount: int
        refund_method: str

    class Refunded(CardEvent):
        order_id: str
        returned_amount: int
        to_new_card: int
        to_other_method: int
        new_card_id: UUID | None
        received_on: date

    class HistorySealed(Chained, Aggregate.Event):
        """`audit seal`: the card's history stored before the chain existed is covered from
        here on (this event's `prev_hash` links every earlier event). Not published."""

        sealed_at: datetime
        events: int
    class Held(CardEvent):
        """Authorized for one order: nobody else can use or cancel it until the hold
        is captured (Redeemed), voided or times out (HoldReleased)."""

        order_id: str
        order_total: int
        amount: int  # what a capture would apply
        until: datetime
        customer_id: str | None

    class HoldReleased(CardEvent):
        order_id: str
        reason: Literal["voided", "timed_out"]

    status: Status

    @event(Purchased)
    def __init__(
        self,
        *,
        market: str,
        currency: str,
        amount: int,
        at: datetime,
        expires_at: datetime,
        payment_method: Literal["card", "refund"],
        code_last4: str,
        buyer_subject: str | None,
        pii: dict[str, str],
        replaces: UUID | None,
        correlation_id: str,
    ) -> None:
        self.market = market
        self.currency = currency
        self.amount = amount
        self.balance = amount
        self.purchased_at = at
        self.expires_at = expires_at
        self.payment_method = payment_method
        self.code_last4 = code_last4
        self.buyer_subject = buyer_subject
        self.pii = pii
        self.replaces = replaces
        self.replaced_by: list[UUID] = []
        self.purchase_order_id = correlation_id
        self.status = "active"
        self.activated = False
        # The order the card was used on (R10/R11: one use, one order).
        self.used_on_order: str | None = None
        self.used_at: datetime | None = None
        self.redeemed_by: str | None = None
        self.order_total = 0
        self.applied = 0
        self.refunded_to_card = 0
        self.refunded_other = 0
        self.refused_attempts = 0
        # The order holding the card, and until when.
        self.held_for: str | None = None
        self.held_until: datetime | None = None
        self.held_order_total = 0
        self.held_customer: str | None = None

    def seal_history(self, *, now: datetime) -> None:
        """Audit: chain a history written before the chain existed, recording when."""
        self._seal(sealed_at=now, events=self.version)

    @event(HistorySealed)
    def _seal(self, *, sealed_at: datetime, events: int) -> None:
        pass

    @property
    def chain_head(self) -> str | None:
        """The hash of the card's last event."""
        head: str | None = self.__dict__.get("_chain_head")
        return head

    # --- buying (R1, R2, R4, R9) -------------------------------------------------------

    @staticmethod
    def check_amount(market: Market, amount: int) -> None:
        """R1: 20 to 500 in the market's currency, both bounds included."""
        if not market.min_minor <= amount <= market.max_minor:
            raise refuse(
                "amount_out_of_range",
                f"amount must be between {market.min_amount} and {market.max_amount} "
                f"{market.currency}",
            )

    @staticmethod
    def check_payment_method(method: str) -> None:
        """R2: a bank card only (no buy-now-pay-later, promo code or other gift card)."""
        if method != "card":
            raise refuse(
                "payment_method_not_allowed",
                "gift cards can only be paid by bank card",
            )

    @classmethod
    def purchase(
        cls,
        *,
        market: Market,
        amount: int,
        payment_method: str,
        now: datetime,
        code_last4: str,
        buyer_subject: str | None,
        pii: dict[str, str],
        order_id: str,
    ) -> GiftCard:
        """R1-R4, R9: a paid card, valid for the market's validity period from purchase."""
        cls.check_payment_method(payment_method)
        cls.check_amount(market, amount)
        return cls._issue(
            market,
            now,
            order_id,
            amount=amount,
            payment_method="card",
            code_last4=code_last4,
            buyer_subject=buyer_subject,
            pii=pii,
            replaces=None,
        )

    @classmethod
    def issue_replacement(
        cls,
        *,
        original: GiftCard,
        market: Market,
        amount: int,
        now: datetime,
        code_last4: str,
        order_id: str,
        owner: str | None = None,
        pii: dict[str, str] | None = None,
    ) -> GiftCard:
        """R17: goods paid by card come back as a NEW card (new id, new code, full validity),
        owned by the customer of the refunded order (`owner`, by default whoever paid it with
        the card), with their sealed address (`pii`), never the original card's buyer's."""
        # market is the original card's: a replacement never changes platform.
        return cls._issue(
            market,
            now,
            order_id,
            amount=amount,
            payment_method="refund",
            code_last4=code_last4,
            buyer_subject=owner or original.redeemed_by,
            pii=dict(pii or {}),
            replaces=original.id,
        )

    @classmethod
    def _issue(cls, market: Market, now: datetime, order_id: str, **fields: Any) -> GiftCard:
        """A new active card (R4), valid for the market's period from `now` (R9; R17 for a
        refund card); `fields` are
        the rest of Purchased's, validated by it."""
        refund = fields["payment_method"] == "refund"
        validity = market.refund_validity_months if refund else market.validity_months
        card = cls._create(
            cls.Purchased,
            market=market.code,
            currency=market.currency,
            at=now,
            expires_at=add_months(now, validity),
            terms_version=market.terms_version,
            correlation_id=order_id,
            **fields,
        )
        card.activate(at=now, terms_version=market.terms_version, correlation_id=order_id)
        return card

    def activate(self, *, at: datetime, terms_version: str, correlation_id: str) -> None:
        """R4: usable right after purchase."""
        self._record(
            self.Activated, at=at, terms_version=terms_version, correlation_id=correlation_id
        )

    @event(Activated)
    def _activated(self) -> None:
        self.activated = True

    def _record(
        self,
        event_class: type[CardEvent],
        *,
        at: datetime,
        terms_version: str,
        correlation_id: str,
        **fields: Any,
    ) -> None:
        """Trigger one of the card's events, stamped with the card's market and currency."""
        self.trigger_event(
            event_class,
            market=self.market,
            currency=self.currency,
            at=at,
            terms_version=terms_version,
            correlation_id=correlation_id,
            **fields,
        )

    # --- using (R6, R9-R14) ------------------------------------------------------------

    def is_expired_at(self, now: datetime) -> bool:
        return now >= self.expires_at

    def facts(self) -> CardFacts:
        return CardFacts(
            card_id=self.id, status=self.status, balance=self.balance, currency=self.currency,
            market=self.market, expires_at=self.expires_at,
            held_until=self.held_until if self.held_for is not None else None,
            code_last4=self.code_last4,
        )

    def check_usable(self, market: Market, now: datetime) -> None:
        if self.status == "cancelled":
            raise refuse("cancelled", "this card was cancelled")
        if self.status == "redeemed":
            raise refuse("already_redeemed", "this card has already been used")
        if self.status == "expired" or self.is_expired_at(now):
            raise refuse("expired", f"this card expired on {self.expires_at.date().isoformat()}")
        if market.code != self.market:
            raise refuse(
                "wrong_market", f"this card can only be used on the {self.market} platform"
            )

    @staticmethod
    def check_combination(promo_codes: list[str], contains_gift_card: bool) -> None:
        """R13: no other discount, and a gift card never pays for a gift card."""
        if contains_gift_card:
            raise refuse(
                "gift_card_purchase_not_allowed",
                "a gift card cannot be used to buy another gift card",
            )
        if promo_codes:
            raise refuse(
                "not_combinable",
                "a gift card cannot be combined with promo codes or other discounts",
            )

    def redeem(
        self,
        *,
        market: Market,
        order_id: str,
        order_total: int,
        customer_id: str | None,
        promo_codes: list[str],
        contains_gift_card: bool,
        now: datetime,
    ) -> None:
        """R6, R9-R14: one use on one order; the rest of the balance is forfeited (R11). The
        holding order's redemption is the hold's capture."""
        self.check_usable(market, now)
        self.check_not_held_for_another(order_id, now)
        self.check_combination(promo_codes, contains_gift_card)
        applied = min(self.balance, order_total)
        self._record(
            self.Redeemed,
            at=now, terms_version=market.terms_version, correlation_id=order_id,
            order_id=order_id,
            order_total=order_total,
            applied=applied,
            remaining_to_pay=order_total - applied,
            forfeited=self.balance - applied,
            customer_id=customer_id,
        )

    @event(Redeemed)
    def _redeemed(
        self, *, order_id: str, order_total: int, applied: int, customer_id: str | None,
        at: datetime,
    ) -> None:
        self.status = "redeemed"
        self.held_for = None
        self.held_until = None
        self.used_on_order = order_id
        self.used_at = at
        self.redeemed_by = customer_id
        self.order_total = order_total
        self.applied = applied
        self.balance = 0

    def record_refusal(
        self, *, order_id: str, reason: str, attempted_market: str, customer_id: str | None,
        at: datetime, terms_version: str,
    ) -> None:
        """A refused attempt on a known card: kept for the fraud view, changes nothing else."""
        self._record(
            self.RedemptionRefused,
            at=at, terms_version=terms_version, correlation_id=order_id,
            order_id=order_id, reason=reason, attempted_market=attempted_market,
            customer_id=customer_id,
        )

    @event(RedemptionRefused)
    def _redemption_refused(self) -> None:
        self.refused_attempts += 1

    # --- holds: authorize, then capture (Redeemed) or void ----------------------------

    def is_held_at(self, now: datetime) -> bool:
        return self.held_until is not None and now < self.held_until

    def check_not_held_for_another(self, order_id: str, now: datetime) -> None:
        """A card on hold serves only the order that holds it."""
        if self.is_held_at(now) and self.held_for != order_id:
            raise refuse("card_on_hold", "this card is on hold for another order")

    def hold(
        self,
        *,
        market: Market,
        order_id: str,
        order_total: int,
        customer_id: str | None,
        promo_codes: list[str],
        contains_gift_card: bool,
        now: datetime,
        until: datetime,
    ) -> None:
        """R6, R9-R13 checked as a redemption would be, then the card is reserved for the order;
        a repeated authorization of the holding order changes nothing."""
        self.check_usable(market, now)
        self.check_not_held_for_another(order_id, now)
        self.check_combination(promo_codes, contains_gift_card)
        if self.is_held_at(now):
            if order_total != self.held_order_total:
                # The same order with another total is another request: never the old hold.
                raise refuse("order_mismatch", "this order holds the card for another total")
            return
        self._record(
            self.Held,
            at=now, terms_version=market.terms_version, correlation_id=order_id,
            order_id=order_id,
            order_total=order_total,
            amount=min(self.balance, order_total),
            until=until,
            customer_id=customer_id,
        )

    @event(Held)
    def _held(
        self, *, order_id: str, until: datetime, order_total: int, customer_id: str | None
    ) -> None:
        self.held_for = order_id
        self.held_until = until
        self.held_order_total = order_total
        self.held_customer = customer_id

    def release_hold(self, *, order_id: str, now: datetime, terms_version: str) -> bool:
        """Void: only the holding order releases its hold; nothing to do if none is left."""
        if self.held_for != order_id or not self.is_held_at(now):
            return False
        self._record(
            self.HoldReleased,
            at=now, terms_version=terms_version, correlation_id=order_id,
            order_id=order_id, reason="voided",
        )
        return True

    def release_timed_out_hold(self, *, now: datetime, terms_version: str) -> bool:
        """A hold past its time is released, dated when it ran out (sweep, or on access)."""
        if self.held_for is None or self.held_until is None or self.is_held_at(now):
            return False
        self._record(
            self.HoldReleased,
            at=self.held_until, terms_version=terms_version, correlation_id=self.held_for,
            order_id=self.held_for, reason="timed_out",
        )
        return True

    @event(HoldReleased)
    def _hold_released(self) -> None:
        self.held_for = None
        self.held_until = None

    # --- expiry (R9) -------------------------------------------------------------------

    def expire(self, *, now: datetime, terms_version: str) -> bool:
        """R9: after the validity period the card expires and its balance is lost."""
        if self.status != "active" or not self.is_expired_at(now):
            return False
        self._record(
            self.Expired,
            at=self.expires_at, terms_version=terms_version, correlation_id=f"expiry:{self.id}",
            forfeited=self.balance,
        )
        return True

    @event(Expired)
    def _expired(self) -> None:
        self.status = "expired"
        self.balance = 0

    # --- changing one's mind (R16-R20) -------------------------------------------------

    def check_cancellable(self, market: Market, now: datetime) -> None:
        """R19: within 14 days of purchase, and only if never used, not even partly."""
        if self.status == "cancelled":
            raise refuse("cancelled", "this card was already cancelled")
        if self.status == "redeemed":
            raise refuse("card_already_used", "a used card cannot be cancelled")
        if self.is_held_at(now):
            raise refuse("card_on_hold", "a card on hold for an order cannot be cancelled")
        if self.payment_method != "card":
            raise refuse(
                "cancellation_period_over",
                "a card issued as a refund was not purchased and cannot be cancelled",
            )
        deadline = cancellation_deadline(market, market.local_date(self.purchased_at))
        if self.status == "expired" or market.local_date(now) > deadline:
            raise refuse(
                "cancellation_period_over",
                f"cancellation was possible until {deadline.isoformat()}",
            )

    def cancel(self, *, market: Market, now: datetime, correlation_id: str) -> None:
        self.check_cancellable(market, now)
        self._record(
            self.Cancelled,
            at=now, terms_version=market.terms_version, correlation_id=correlation_id,
            refund_amount=self.balance,
            refund_method="original_payment",
        )

    @event(Cancelled)
    def _cancelled(self) -> None:
        self.status = "cancelled"
        self.balance = 0

    def split_refund(
        self, market: Market, returned_amount: int, received_on: date, now: datetime
    ) -> tuple[int, int]:
        """R16/R18: returned goods within the withdrawal period; the card part first."""
        if self.used_on_order is None or self.used_at is None:
            raise refuse("unknown_order", "no order was paid with this card")
        if returned_amount <= 0:
            raise refuse("invalid_amount", "returned amount must be positive")
        # A receipt date outside [order day, today] would move the R16 deadline at will.
        if not market.local_date(self.used_at) <= received_on <= market.local_date(now):
            raise refuse(
                "invalid_date",
                "goods cannot be received before the order was paid or after today",
            )
        deadline = withdrawal_deadline(market, received_on)
        if market.local_date(now) > deadline:
            raise refuse(
                "withdrawal_period_over",
                f"goods received on {received_on.isoformat()} could be returned until "
                f"{deadline.isoformat()}",
            )
        refunded = self.refunded_to_card + self.refunded_other
        if refunded + returned_amount > self.order_total:
            raise refuse(
                "refund_exceeds_paid",
                f"only {self.order_total - refunded} minor units of this order are left to refund",
            )
        to_card = min(returned_amount, self.applied - self.refunded_to_card)
        return to_card, returned_amount - to_card

    def record_refund(
        self,
        *,
        order_id: str,
        returned_amount: int,
        to_new_card: int,
        to_other_method: int,
        new_card_id: UUID | None,
        received_on: date,
        at: datetime,
        terms_version: str,
    ) -> None:
        """R17/R18: lineage to the new card; the rest goes back through the other method."""
        self._record(
            self.Refunded,
            at=at, terms_version=terms_version, correlation_id=order_id,
            order_id=order_id,
            returned_amount=returned_amount,
            to_new_card=to_new_card,
            to_other_method=to_other_method,
            new_card_id=new_card_id,
            received_on=received_on,
        )

    @event(Refunded)
    def _refunded(
        self, *, to_new_card: int, to_other_method: int, new_card_id: UUID | None
    ) -> None:
        self.refunded_to_card += to_new_card
        self.refunded_other += to_other_method
        if new_card_id is not None:
            self.replaced_by.append(new_card_id)
