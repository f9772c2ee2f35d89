"""Holds: look a code up, authorize a card for an order, capture or void it, and
release the holds that timed out; the order service's synchronous checkout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.utils import get_topic

from application.card_base import REDEMPTION_ORDER, check_order_id, iso
from application.cards import GiftCards
from application.commands import AuthorizeHold, CaptureHold, LookUpCard, VoidHold
from application.results import CardLookup, HoldsReleased, HoldState, Redemption
from application.unit_of_work import UnitOfWork
from domain.errors import refuse
from domain.giftcard import CardFacts, GiftCard
from domain.streams import Index, stream_id

HOLD_ORDER = "hold-order"
DEFAULT_HOLD_SECONDS = 30 * 60
R = TypeVar("R")
# Events that start or end a hold: the sweep replays only these.
HOLD_EVENTS = (GiftCard.Held, GiftCard.HoldReleased, GiftCard.Redeemed, GiftCard.Cancelled)


@dataclass(frozen=True, slots=True)
class LookupPlan:
    """What a lookup reads first: the code's index stream and R8's windows (the subject's,
    the source's own, the source's budget)."""

    code_index: UUID
    guards: tuple[UUID, UUID, UUID]
    market: str
    now: datetime


class Holds:
    """Authorize → capture (the single use, R11) or void; a hold left alone times out."""

    def __init__(self, cards: GiftCards, *, hold_seconds: int = DEFAULT_HOLD_SECONDS) -> None:
        self.cards = cards
        self.hold_for = timedelta(seconds=hold_seconds)

    def _run(
        self, command: Callable[[UnitOfWork], R], within: UnitOfWork | None, simulate: bool
    ) -> R:
        """`simulate`: the full decision in a unit of work that is never saved."""
        if simulate:
            return command(UnitOfWork(self.cards))
        return self.cards.run(command, within)

    def lookup(self, command: LookUpCard, *, within: UnitOfWork | None = None) -> CardLookup:
        """The card of a code on this market, as of now; unknown and other-market codes are
        answered alike and counted against the subject (R8)."""
        the_market = self.cards.markets.get(command.market)
        now = self.cards.now()
        # A lock-out refusal is keyed by its order; a lookup has none, so one per instant.
        guard = self.cards.guessing(command.customer_id, command.source, f"lookup:{iso(now)}",
                                    now)

        def lookup(uow: UnitOfWork) -> CardLookup:
            card = self.cards.card_for_code(uow, command.code, guard, the_market, now,
                                            conceal_market=True)
            return CardLookup.of(card.facts(), now)

        return self._run(lookup, within, simulate=False)

    def plan_lookup(self, command: LookUpCard) -> LookupPlan:
        """The streams `lookup` would read first (bad input is refused here alike). Reads the
        customer's store id if one is named (a query), and never gives one: a read that finds
        the card writes nothing."""
        the_market = self.cards.markets.get(command.market)
        now = self.cards.now()
        guards = self.cards.read_guards(command.customer_id, command.source, now)
        return LookupPlan(self.cards.code_index_id(command.code), guards, the_market.code, now)

    def answer_from_facts(
        self, plan: LookupPlan, facts: CardFacts | None, counts: tuple[int, int, int]
    ) -> CardLookup | None:
        """`lookup`'s answer from a card's kept facts and the guards' counts (`plan.guards`'
        order), when the full lookup would write nothing; None where it must run: a code with
        no kept row, a card of another market, a guard at its limit (R8), a hold to release."""
        if facts is None or facts.market != plan.market or facts.hold_timed_out_at(plan.now):
            return None
        limits = self.cards.markets.guessing
        subject, source, budget = counts
        if max(subject, source) >= limits.max_unknown_codes:
            return None
        if budget >= limits.max_unknown_codes_per_source:
            return None
        return CardLookup.of(facts, plan.now)

    def authorize(
        self, command: AuthorizeHold, *, simulate: bool = False, within: UnitOfWork | None = None
    ) -> HoldState:
        """R6, R8-R13, then the card is held for the order until captured, voided or timed out.
        Repeating the holding order's authorization returns the same hold. `simulate`: the
        full decision in a unit of work that is never saved."""
        the_market = self.cards.markets.get(command.market)
        code, order_id = command.code, command.order_id
        check_order_id(order_id)
        if command.order_total <= 0:
            raise refuse("invalid_amount", "order total must be positive")
        now = self.cards.now()
        guard = self.cards.guessing(command.customer_id, command.source, order_id, now)
        customer_id = guard.subject if command.customer_id is not None else None  # store id
        if simulate:
            # A dry run tells whether a code exists as the real call would: it spends the
            # same R8 budget, and is refused alike once it is spent (its misses are saved).
            self.cards.run(lambda uow: self.cards.card_for_code(
                uow, code, guard, the_market, now, conceal_market=True))

        def authorize(uow: UnitOfWork) -> HoldState:
            card = self.cards.card_for_code(uow, code, guard, the_market, now,
                                            conceal_market=True)
            if uow.get(stream_id(REDEMPTION_ORDER, order_id), Index) is not None:
                raise refuse("order_already_paid", "this order is already paid with a gift card")
            held = uow.get(stream_id(HOLD_ORDER, order_id), Index)
            if held is not None and held.target != card.id:
                raise refuse("order_mismatch", "this order already holds another gift card")
            card.hold(
                market=the_market,
                order_id=order_id,
                order_total=command.order_total,
                customer_id=customer_id,
                promo_codes=list(command.promo_codes),
                contains_gift_card=command.contains_gift_card,
                now=now,
                until=now + self.hold_for,
            )
            uow.add(card)
            if held is None:
                uow.add(Index.register(HOLD_ORDER, order_id, card.id))
            return HoldState.held(card, order_id)

        return self._run(authorize, within, simulate)

    def order_keys(self, order_id: str) -> list[UUID]:
        """Streams capture and void read first (group commit prefetches them for a batch)."""
        return [stream_id(HOLD_ORDER, order_id), stream_id(REDEMPTION_ORDER, order_id)]

    def authorize_keys(self, command: AuthorizeHold) -> list[UUID]:
        """Streams an authorization reads first: the order's indexes, R8's attempt streams and
        the code's index."""
        order_id = command.order_id
        return [
            *self.order_keys(order_id),
            *self.cards.attempt_ids(command.customer_id, command.source, order_id,
                                    self.cards.now()),
            self.cards.code_index_id(command.code),
        ]

    def _held_card(self, uow: UnitOfWork, order_id: str) -> GiftCard:
        check_order_id(order_id)
        held = uow.get(stream_id(HOLD_ORDER, order_id), Index)
        if held is None:
            raise refuse("unknown_hold", "no gift card was authorized for this order")
        return self.cards._card(uow, held.target)

    def show(self, *, order_id: str) -> HoldState:
        """The hold of an order as of now: held (with its amount and time), captured, or
        released (voided or timed out)."""
        now = self.cards.now()
        card = self._held_card(UnitOfWork(self.cards), order_id)
        if card.used_on_order == order_id:
            return HoldState(order_id, card.id, "captured")
        if card.held_for == order_id and card.is_held_at(now):
            return HoldState.held(card, order_id)
        return HoldState(order_id, card.id, "released")

    def capture(self, command: CaptureHold, *, within: UnitOfWork | None = None) -> Redemption:
        """The hold becomes the card's single use (Redeemed, remainder forfeited, R11)."""
        now = self.cards.now()
        order_id = command.order_id

        def capture(uow: UnitOfWork) -> Redemption:
            card = self._held_card(uow, order_id)
            if card.used_on_order == order_id:
                return Redemption.of(card)  # captured already
            self.cards.release_timed_out_hold(uow, card, now)
            if card.held_for != order_id:
                raise refuse("hold_released", "the hold was voided or timed out")
            market = self.cards.markets.get(card.market)
            card.redeem(
                market=market,
                order_id=order_id,
                order_total=card.held_order_total,
                customer_id=card.held_customer,
                promo_codes=[],
                contains_gift_card=False,
                now=now,
            )
            uow.add(card, Index.register(REDEMPTION_ORDER, order_id, card.id))
            return Redemption.of(card)

        return self.cards.run(capture, within)

    def void(self, command: VoidHold, *, within: UnitOfWork | None = None) -> HoldState:
        """Releases the order's hold; voiding again, or after a time-out, changes nothing."""
        now = self.cards.now()
        order_id = command.order_id

        def void(uow: UnitOfWork) -> HoldState:
            card = self._held_card(uow, order_id)
            if card.used_on_order == order_id:
                raise refuse("already_redeemed", "the hold was captured already")
            market = self.cards.markets.get(card.market)
            self.cards.release_timed_out_hold(uow, card, now)
            if card.release_hold(order_id=order_id, now=now, terms_version=market.terms_version):
                uow.add(card)
            return HoldState(order_id, card.id, "voided")

        return self.cards.run(void, within)

    def release_timed_out(self) -> HoldsReleased:
        """The sweep: every hold past its time released, with an event dated when it ran out."""
        now = self.cards.now()
        topics = [get_topic(cls) for cls in HOLD_EVENTS]
        held: dict[UUID, datetime] = {}
        start = 1
        recorder = self.cards.recorder
        while True:
            page = recorder.select_notifications(start, 1000, topics=topics)
            if not page:
                break
            for notification in page:
                event: Any = self.cards.mapper.to_domain_event(notification)
                if isinstance(event, GiftCard.Held):
                    held[event.originator_id] = event.until
                else:
                    held.pop(event.originator_id, None)
            start = page[-1].id + 1
        released = 0
        for card_id, until in held.items():
            if until > now:
                continue

            def command(uow: UnitOfWork, card_id: UUID = card_id) -> bool:
                card = self.cards._card(uow, card_id)
                before = len(uow.changed)
                self.cards.release_timed_out_hold(uow, card, now)
                return len(uow.changed) > before

            released += self.cards.run(command)
        return HoldsReleased(as_of=now, released=released)

