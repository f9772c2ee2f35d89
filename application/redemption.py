"""Redemption and cancellation: a card's single use, the limits on guessing codes, cancelling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from application.card_base import (
    MAX_ORDER_ID,
    PURCHASE_ORDER,
    REDEMPTION_ORDER,
    CardsBase,
    check_order_id,
)
from application.commands import CancelCard, RedeemCard
from application.results import Cancellation, Redemption
from application.unit_of_work import UnitOfWork
from domain.errors import DomainError, refuse
from domain.giftcard import GiftCard
from domain.ids import check_id
from domain.markets import Market
from domain.streams import CheckoutAttempts, GuessingBudget, Index, stream_id


@dataclass(frozen=True, slots=True)
class Guessing:
    """R8's windows for one attempt: the subject's (a customer, or the source without one),
    the source's own when a customer is named, and the source's ceiling (its budget)."""

    subject: str
    source: str
    order_id: str
    windows: tuple[UUID, ...]  # the subject's first: its misses are recorded there
    budget: UUID
    lockout: UUID

    @property
    def window(self) -> UUID:
        return self.windows[0]


class Redeeming(CardsBase):
    """Use cases of a card's single use: redeem (R6, R8-R14) within R8's limits on guessing,
    and cancel (R19/R20)."""

    def redeem(self, command: RedeemCard, *, within: UnitOfWork | None = None
               ) -> Redemption:
        """R6, R8-R14: one card per order, used once; a retry of the same order is a no-op.
        `source` names the channel (`cli`, `checkout`, an API key's id, never a secret): unknown
        codes count against the customer, or against the source when no customer is named."""
        the_market = self.markets.get(command.market)
        code, order_id = command.code, command.order_id
        check_order_id(order_id)
        if command.order_total <= 0:
            raise refuse("invalid_amount", "order total must be positive")
        now = self.now()
        guard = self.guessing(command.customer_id, command.source, order_id, now)
        customer_id = guard.subject if command.customer_id is not None else None  # store id

        def redeem(uow: UnitOfWork) -> Redemption:
            used = uow.get(stream_id(REDEMPTION_ORDER, order_id), Index)
            if used is not None:
                # A retry of an order already paid with this very card is the same command
                # (R3/R10: idempotent on the order id), lock-out or not. It confirms the code
                # only of a card that paid this order: used up, worth nothing to a guesser.
                paid_with = self._card(uow, used.target)
                if self._code_matches(uow, code, paid_with):
                    return Redemption.of(paid_with)
            card = self.card_for_code(uow, code, guard, the_market, now)
            if used is not None:
                raise refuse(
                    "one_card_per_order", "this order is already paid with another gift card"
                )
            try:
                card.redeem(
                    market=the_market,
                    order_id=order_id,
                    order_total=command.order_total,
                    customer_id=customer_id,
                    promo_codes=list(command.promo_codes),
                    contains_gift_card=command.contains_gift_card,
                    now=now,
                )
            except DomainError as refusal:
                card.expire(now=now, terms_version=the_market.terms_version)
                card.record_refusal(
                    order_id=order_id,
                    reason=refusal.code,
                    attempted_market=the_market.code,
                    customer_id=customer_id,
                    at=now,
                    terms_version=the_market.terms_version,
                )
                uow.add(card)
                raise
            uow.add(card, Index.register(REDEMPTION_ORDER, order_id, card.id))
            return Redemption.of(card)

        return self.run(redeem, within)

    def card_for_code(
        self,
        uow: UnitOfWork,
        code: str,
        guard: Guessing,
        market: Market,
        now: datetime,
        *,
        conceal_market: bool = False,
    ) -> GiftCard:
        """The card of a typed code, within R8's limits on guessing: past a limit, or for a
        code that matches no card, refused (and counted); a hold past its time is released
        here. `conceal_market`: a card of another market is answered as an unknown code."""
        # Each read is a round trip: the first reads in one query, the card in another.
        uow.prefetch([*guard.windows, guard.budget, code_index := self.code_index_id(code)])
        # Added to the unit of work only once they record something; concurrent writers of
        # one window conflict and retry, so the counts are exact across processes.
        attempts = (uow.get(guard.window, CheckoutAttempts)
                    or CheckoutAttempts.open(guard.subject, guard.window))
        budget = (uow.get(guard.budget, GuessingBudget)
                  or GuessingBudget.open(guard.source, guard.budget))
        limits = self.markets.guessing
        others = [uow.get(w, CheckoutAttempts) for w in guard.windows[1:]]
        if (
            attempts.unknown_codes >= limits.max_unknown_codes
            or any(o is not None and o.unknown_codes >= limits.max_unknown_codes for o in others)
            or budget.misses >= limits.max_unknown_codes_per_source
        ):
            # Checked before the code is looked up: a valid code is refused alike, so a
            # locked-out guesser learns nothing about the codes typed.
            self._record_lockout(uow, guard, market, now)
            raise refuse(
                "too_many_attempts",
                "too many unknown gift card codes were tried; try again later",
            )
        found = uow.get(code_index, Index)
        if found is not None:
            uow.prefetch([found.target])
        card = None if found is None else self._card(uow, found.target)
        if card is None or (conceal_market and card.market != market.code):
            self._record_unknown_code(uow, attempts, guard.order_id, market, now)
            budget.count_miss()
            uow.add(budget)
            raise refuse("unknown_code", "no gift card matches this code")
        self.release_timed_out_hold(uow, card, now)
        return card

    def guessing(
        self, customer_id: str | None, source: str, order_id: str, now: datetime
    ) -> Guessing:
        """R8's budget for one attempt at `now`: the windows it is checked against (the
        customer's by their store id)."""
        subject = attempt_subject(customer_id, source)
        # A customer named by a source locked out on its own is refused too: naming one is
        # not a way around the source's lock-out.
        start, anonymous, budget = self._source_guards(source, now)
        if customer_id is not None:  # only once both are checked: a refusal writes nothing
            subject = self.vault.store_id(subject)
        window = CheckoutAttempts.window_id(subject, start)
        return Guessing(
            subject=subject,
            source=source,
            order_id=order_id,
            windows=(window,) if anonymous == window else (window, anonymous),
            budget=budget,
            lockout=CheckoutAttempts.refusal_id(subject, start, order_id),
        )

    def read_guards(
        self, customer_id: str | None, source: str, now: datetime
    ) -> tuple[UUID, UUID, UUID]:
        """R8's windows a check at `now` reads (the subject's, the source's own, the source's
        budget) for a read that records nothing: a customer never seen has no store id, so no
        window of their own yet, and is given none here (their misses are the source's, which
        counts them too)."""
        start, anonymous, budget = self._source_guards(source, now)
        window = anonymous
        if customer_id is not None:
            known = self.vault.resolve_store_id(attempt_subject(customer_id, source))
            if known is not None:
                window = CheckoutAttempts.window_id(known, start)
        return window, anonymous, budget

    def _source_guards(self, source: str, now: datetime) -> tuple[datetime, UUID, UUID]:
        """The start of R8's window at `now`, the source's own window in it and the source's
        budget: what an attempt counts against whoever it names (the source is checked here)."""
        start = self.markets.guessing.window_start(now)
        anonymous = CheckoutAttempts.window_id(attempt_subject(None, source), start)
        return start, anonymous, GuessingBudget.window_id(source, start)

    def attempt_ids(
        self, customer_id: str | None, source: str, order_id: str, now: datetime
    ) -> list[UUID]:
        """The streams a code's check at `now` reads first: the windows, the source's budget
        and the stream its refusal takes if one of them is locked."""
        guard = self.guessing(customer_id, source, order_id, now)
        return [*guard.windows, guard.budget, guard.lockout]

    def _record_unknown_code(
        self,
        uow: UnitOfWork,
        attempts: CheckoutAttempts,
        order_id: str,
        market: Market,
        now: datetime,
    ) -> None:
        attempts.record_unknown_code(
            order_id=order_id,
            market=market.code,
            currency=market.currency,
            at=now,
            terms_version=market.terms_version,
            correlation_id=order_id,
        )
        uow.add(attempts)

    def _record_lockout(
        self, uow: UnitOfWork, guard: Guessing, market: Market, now: datetime
    ) -> None:
        """Each refused attempt in a stream of its own: the window stream stays bounded."""
        if uow.get(guard.lockout, CheckoutAttempts) is not None:
            return  # the same order retried in the same window: recorded once
        refusal = CheckoutAttempts.open(guard.subject, guard.lockout)
        order_id = guard.order_id
        refusal.record_refusal(
            customer_id=guard.subject,
            order_id=order_id,
            reason="too_many_attempts",
            market=market.code,
            currency=market.currency,
            at=now,
            terms_version=market.terms_version,
            correlation_id=order_id,
        )
        uow.add(refusal)

    def cancel(self, command: CancelCard, *, within: UnitOfWork | None = None
               ) -> Cancellation:
        """R19/R20: cancel an unused card within 14 days; refund to the original payment.
        A request may name the purchase order instead of the card (card_id None)."""
        card_id, code, order_id = command.card_id, command.code, command.order_id
        if order_id is not None:
            check_order_id(order_id)
        now = self.now()

        def cancel(uow: UnitOfWork) -> Cancellation:
            card = self._card(uow, card_id or self._bought_with(uow, order_id))
            if code is not None and not self._code_matches(uow, code, card):
                raise refuse("code_mismatch", "the code given does not belong to this card")
            if order_id is not None and order_id != card.purchase_order_id:
                raise refuse("order_mismatch", "this card was not bought with that order")
            if card.status == "cancelled":
                return Cancellation.of(card)
            self.release_timed_out_hold(uow, card, now)
            card.cancel(
                market=self.markets.get(card.market),
                now=now,
                correlation_id=command.correlation_id or order_id or card.purchase_order_id,
            )
            uow.add(card)
            return Cancellation.of(card)

        return self.run(cancel, within)

    def _bought_with(self, uow: UnitOfWork, order_id: str | None) -> UUID:
        index = None if order_id is None else uow.get(stream_id(PURCHASE_ORDER, order_id), Index)
        if index is None:
            raise refuse("unknown_order", "no card was bought with this order")
        return index.target

    def order_market(self, order_id: str) -> str:
        """The market of an order paid with a gift card (to read amounts in its currency)."""
        uow = UnitOfWork(self)
        used = uow.get(stream_id(REDEMPTION_ORDER, order_id), Index)
        if used is None:
            raise refuse("unknown_order", "no order paid with a gift card has this id")
        return self._card(uow, used.target).market


def attempt_subject(customer_id: str | None, source: str) -> str:
    """Whom unknown codes count against: the customer, else the channel they came through."""
    if customer_id is not None:
        return check_id("customer_id", customer_id)
    if not source or len(source) > MAX_ORDER_ID or not source.isprintable():
        raise refuse("invalid_input", f"source must be 1 to {MAX_ORDER_ID} printable characters")
    return f"source:{source}"
