"""The gift card application: one method per use case of the terms, atomic and idempotent."""

from __future__ import annotations

import hmac
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ProcessRecorder, RecordConflictError, Tracking
from eventsourcing.utils import EnvType, get_topic

from application.results import (
    Cancellation,
    CardAsOf,
    CardHistory,
    CardView,
    CodeDeliveryState,
    Expiry,
    HistoryEntry,
    HistorySealed,
    NewCard,
    Purchase,
    Redemption,
    Refund,
    SubjectRight,
)
from application.unit_of_work import UnitOfWork
from domain.addresses import check_address
from domain.base import Aggregate
from domain.chain import CHAIN_FIELDS
from domain.codes import last4, normalize_code
from domain.delivery import CodeDelivery, Kind
from domain.errors import DomainError, refuse
from domain.giftcard import GiftCard
from domain.ids import check_id
from domain.markets import Market, Markets
from domain.ports import Clock, CodeGenerator, CodeHasher, PersonalDataVault, StreamLoader
from domain.streams import CheckoutAttempts, GuessingBudget, Index, stream_id
from domain.subjects import DataSubject, rectified_field

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")
Json = dict[str, Any]

PURCHASE_ORDER = "purchase-order"
REDEMPTION_ORDER = "redemption-order"
REFUND_REQUEST = "refund-request"
CODE = "code"
MAX_ORDER_ID = 200
# A guesser's attempts window is one hot stream that several processes may write at once: each
# loser of a conflict redoes its command on fresh state, and may lose again to a fast writer.
COMMAND_RETRIES = 10

# Marks a message sealed under the recipient's key inside the buyer's seal (see PiiReader).
SEALED_FOR_BOTH = "\x1eboth\x1e"


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


class GiftCards(Application[UUID]):
    """Use cases: purchase, redeem, cancel, refund, expire, show, history."""

    name = "GiftCards"

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        clock: Clock,
        codes: CodeGenerator,
        hasher: CodeHasher,
        vault: PersonalDataVault,
        markets: Markets,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.codes = codes
        self.hasher = hasher
        self.vault = vault
        self.markets = markets
        # Set by the composition root when the store can answer it in one query.
        self.load_streams: StreamLoader | None = None
        # Set by the composition root when the recorder keeps each card's lookup row.
        self.keeps_card_facts = False

    def construct_recorder(self) -> ProcessRecorder:
        # A process recorder: commands from Kafka are stored with their consumed offset.
        return self.factory.process_recorder()

    def record(self, processing: Any) -> None:
        self._record(processing)

    # --- transactions ------------------------------------------------------------------

    @contextmanager
    def batch(self, tracking: Tracking | None = None) -> Iterator[UnitOfWork]:
        """Group commit: the commands given `within=` this unit of work are saved in one
        transaction with `tracking` when the block ends (not if it raises)."""
        uow = UnitOfWork(self)
        yield uow
        uow.commit(tracking)

    def run(self, command: Callable[[UnitOfWork], R], within: UnitOfWork | None = None) -> R:
        """Runs one command in the caller's unit of work, or atomically on its own; a refusal
        still saves what it recorded (attempts)."""
        if within is not None:
            return command(within)
        for attempt in range(COMMAND_RETRIES):
            uow = UnitOfWork(self)
            try:
                try:
                    result = command(uow)
                except DomainError:
                    uow.commit()
                    raise
                uow.commit()
                return result
            except RecordConflictError:
                # A concurrent command wrote the same stream first: redo on fresh state,
                # where the idempotency checks will see its result.
                if attempt == COMMAND_RETRIES - 1:
                    raise
                # Jitter: two writers that conflicted must not retry in lockstep.
                time.sleep(random.random() * 0.001 * (attempt + 1))
        raise AssertionError("unreachable")

    def code_index_id(self, code: str) -> UUID:
        """The index stream of a code: keyed by its HMAC, so the code itself is never stored."""
        return stream_id(CODE, self.hasher.lookup_key(normalize_code(code)))

    def register_code(self, uow: UnitOfWork, code: str, card_id: UUID) -> Index:
        """A new card's code index; the card's lookup row is keyed by it too."""
        index = Index.register(CODE, self.hasher.lookup_key(normalize_code(code)), card_id)
        uow.code_indexes[card_id] = index.id
        return index

    def now(self) -> datetime:
        return self.clock()

    # --- use cases ---------------------------------------------------------------------

    def purchase(
        self,
        *,
        market: str,
        amount: int,
        payment_method: str,
        buyer_id: str | None,
        buyer_email: str | None = None,
        buyer_name: str | None = None,
        recipient_email: str | None = None,
        recipient_name: str | None = None,
        message: str | None = None,
        order_id: str,
        within: UnitOfWork | None = None,
    ) -> Purchase:
        """R1-R5, R9: buy one card per order; a repeated order id returns the same card."""
        the_market = self.markets.get(market)
        check_order_id(order_id)
        if buyer_id is not None:
            check_id("buyer_id", buyer_id)
        check_address(buyer_email, "buyer_email")
        check_address(recipient_email, "recipient_email")

        def command(uow: UnitOfWork) -> Purchase:
            existing = uow.get(stream_id(PURCHASE_ORDER, order_id), Index)
            if existing is not None:
                card = self._card(uow, existing.target)
                if card.market != the_market.code or card.amount != amount:
                    raise refuse(
                        "order_id_conflict",
                        "this order id was already used for a different purchase",
                    )
                return Purchase(CardView.of(card), code=None, replayed=True)
            GiftCard.check_payment_method(payment_method)
            GiftCard.check_amount(the_market, amount)
            code = self.codes()
            pii = self._seal_purchase_pii(
                uow,
                buyer_id, buyer_email, buyer_name, recipient_email, recipient_name, message
            )
            card = GiftCard.purchase(
                market=the_market,
                amount=amount,
                payment_method=payment_method,
                now=self.now(),
                code_last4=last4(code),
                buyer_subject=buyer_id,
                pii=pii,
                order_id=order_id,
            )
            uow.add(
                card,
                Index.register(PURCHASE_ORDER, order_id, card.id),
                self.register_code(uow, code, card.id),
                self._sealed_delivery(uow, card, code, "purchase", buyer_id, pii, None),
            )
            return Purchase(CardView.of(card), code=code, replayed=False)

        return self.run(command, within)

    def _sealed_delivery(
        self,
        uow: UnitOfWork,
        card: GiftCard,
        code: str,
        kind: Kind,
        buyer_subject: str | None,
        pii: dict[str, str],
        refunds_order: str | None,
    ) -> CodeDelivery:
        """R7: the code, sealed under a key of the card's own, recorded as pending delivery in
        the card's transaction (the outbox); the delivery worker e-mails it and destroys the key."""
        return CodeDelivery.seal(
            card_id=card.id,
            kind=kind,
            sealed_code=uow.keys.seal_new_subject(delivery_key_subject(card.id), code),
            buyer_subject=buyer_subject,
            pii=dict(pii),
            refunds_order=refunds_order,
            now=self.now(),
        )

    def seal_pii(self, uow: UnitOfWork, subject_id: str, name: str, value: str) -> str:
        """A rectifiable field (e-mail, name) under its own key, which a rectification
        destroys (art. 16); anything else under the subject's key."""
        kind = rectified_field(name)
        if kind is None:
            return uow.keys.seal(subject_id, value)
        return uow.keys.seal_field(subject_id, kind, value)

    def purchase_subjects(self, buyer_id: str | None, recipient_email: str | None) -> list[str]:
        """The vault subjects a purchase seals under (a batch reads their keys at once)."""
        recipient = self.vault.subject_for_email(recipient_email) if recipient_email else None
        return [s for s in (buyer_id, recipient) if s]

    def _seal_purchase_pii(
        self,
        uow: UnitOfWork,
        buyer_id: str | None,
        buyer_email: str | None,
        buyer_name: str | None,
        recipient_email: str | None,
        recipient_name: str | None,
        message: str | None,
    ) -> dict[str, str]:
        """R5/R21: personal data is sealed with its subject's key; only ids stay in clear."""
        sealed: dict[str, str] = {}
        buyer_fields = {"buyer_email": buyer_email, "buyer_name": buyer_name, "message": message}
        if any(buyer_fields.values()) and not buyer_id:
            raise refuse("invalid_input", "personal data needs the buyer's customer id")
        recipient = self.vault.subject_for_email(recipient_email) if recipient_email else None
        if message and recipient:
            # Written by the buyer, about and for the recipient: sealed under both keys, so
            # either one's erasure makes it unreadable (P2).
            buyer_fields["message"] = SEALED_FOR_BOTH + uow.keys.seal(recipient, message)
        for name, value in buyer_fields.items():
            if value and buyer_id:
                sealed[name] = self.seal_pii(uow, buyer_id, name, value)
        if recipient_email and recipient:
            sealed["recipient_subject"] = recipient
            sealed["recipient_email"] = self.seal_pii(uow, recipient, "recipient_email",
                                                      recipient_email)
            if recipient_name:
                sealed["recipient_name"] = self.seal_pii(uow, recipient, "recipient_name",
                                                         recipient_name)
        elif recipient_name:
            raise refuse("invalid_input", "a recipient name needs the recipient's email")
        return sealed

    def redeem(
        self,
        *,
        code: str,
        market: str,
        order_id: str,
        order_total: int,
        customer_id: str | None = None,
        source: str,
        promo_codes: list[str] | None = None,
        contains_gift_card: bool = False,
        within: UnitOfWork | None = None,
    ) -> Redemption:
        """R6, R8-R14: one card per order, used once; a retry of the same order is a no-op.
        `source` names the channel (`cli`, `checkout`, an API key's id, never a secret): unknown
        codes count against the customer, or against the source when no customer is named."""
        the_market = self.markets.get(market)
        check_order_id(order_id)
        if order_total <= 0:
            raise refuse("invalid_amount", "order total must be positive")
        now = self.now()
        guard = self.guessing(customer_id, source, order_id, now)

        def command(uow: UnitOfWork) -> Redemption:
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
                    order_total=order_total,
                    customer_id=customer_id,
                    promo_codes=list(promo_codes or []),
                    contains_gift_card=contains_gift_card,
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

        return self.run(command, within)

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

    def release_timed_out_hold(self, uow: UnitOfWork, card: GiftCard, now: datetime) -> None:
        terms = self.markets.get(card.market).terms_version
        if card.release_timed_out_hold(now=now, terms_version=terms):
            uow.add(card)

    def guessing(
        self, customer_id: str | None, source: str, order_id: str, now: datetime
    ) -> Guessing:
        """R8's budget for one attempt at `now`: the windows it is checked against."""
        subject = attempt_subject(customer_id, source)
        start = self.markets.guessing.window_start(now)
        window = CheckoutAttempts.window_id(subject, start)
        # A customer named by a source locked out on its own is refused too: naming one is
        # not a way around the source's lock-out.
        anonymous = CheckoutAttempts.window_id(attempt_subject(None, source), start)
        return Guessing(
            subject=subject,
            source=source,
            order_id=order_id,
            windows=(window,) if anonymous == window else (window, anonymous),
            budget=GuessingBudget.window_id(source, start),
            lockout=CheckoutAttempts.refusal_id(subject, start, order_id),
        )

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

    def cancel(
        self,
        card_id: UUID | None,
        *,
        code: str | None = None,
        order_id: str | None = None,
        correlation_id: str | None = None,
        within: UnitOfWork | None = None,
    ) -> Cancellation:
        """R19/R20: cancel an unused card within 14 days; refund to the original payment.
        A request may name the purchase order instead of the card (card_id None)."""
        if order_id is not None:
            check_order_id(order_id)
        now = self.now()

        def command(uow: UnitOfWork) -> Cancellation:
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
                correlation_id=correlation_id or order_id or card.purchase_order_id,
            )
            uow.add(card)
            return Cancellation.of(card)

        return self.run(command, within)

    def seal_history(self, card_id: UUID, *, within: UnitOfWork | None = None) -> HistorySealed:
        """`audit seal`: chain a card's history stored before the chain existed."""
        now = self.now()

        def command(uow: UnitOfWork) -> HistorySealed:
            card = self._card(uow, card_id)
            card.seal_history(now=now)
            uow.add(card)
            return HistorySealed(card_id=card_id, sealed_at=now, version=card.version,
                                 head=card.chain_head)

        return self.run(command, within)

    def _bought_with(self, uow: UnitOfWork, order_id: str | None) -> UUID:
        index = None if order_id is None else uow.get(stream_id(PURCHASE_ORDER, order_id), Index)
        if index is None:
            raise refuse("unknown_order", "no card was bought with this order")
        return index.target

    def _code_matches(self, uow: UnitOfWork, code: str, card: GiftCard) -> bool:
        index = uow.get(self.code_index_id(code), Index)
        return index is not None and index.target == card.id

    def order_market(self, order_id: str) -> str:
        """The market of an order paid with a gift card (to read amounts in its currency)."""
        uow = UnitOfWork(self)
        used = uow.get(stream_id(REDEMPTION_ORDER, order_id), Index)
        if used is None:
            raise refuse("unknown_order", "no order paid with a gift card has this id")
        return self._card(uow, used.target).market

    def refund(
        self,
        *,
        order_id: str,
        returned_amount: int,
        received_on: date,
        request_id: str | None = None,
        customer_id: str | None = None,
        customer_email: str | None = None,
        customer_name: str | None = None,
        within: UnitOfWork | None = None,
    ) -> Refund:
        """R16-R18: returned goods paid by card come back as a NEW card, the rest otherwise.
        R17: the card belongs to the customer of the refunded order, named by the request with
        their e-mail; it is mailed to them and nobody else (without an e-mail it waits for
        customer service)."""
        check_order_id(order_id)
        if (customer_email or customer_name) and not customer_id:
            raise refuse("invalid_input", "a customer's e-mail or name needs their customer id")
        now = self.now()

        def command(uow: UnitOfWork) -> Refund:
            used = uow.get(stream_id(REDEMPTION_ORDER, order_id), Index)
            if used is None:
                raise refuse("unknown_order", "no order paid with a gift card has this id")
            if request_id is not None:
                done = uow.get(stream_id(REFUND_REQUEST, request_id), Index)
                if done is not None:
                    raise refuse("duplicate_request", "this refund request was already processed")
            original = self._card(uow, used.target)
            owner = customer_id or original.redeemed_by
            if customer_id and original.redeemed_by not in (None, customer_id):
                raise refuse(
                    "customer_mismatch",
                    "the refund names another customer than the one who paid this order",
                )
            market = self.markets.get(original.market)
            to_card, to_other = original.split_refund(market, returned_amount, received_on, now)
            new_card: GiftCard | None = None
            code = ""
            if to_card > 0:
                code = self.codes()
                # The returning customer's e-mail and name, sealed under their key (R21).
                pii = {
                    name: self.seal_pii(uow, owner, name, value)
                    for name, value in (("buyer_email", customer_email),
                                        ("buyer_name", customer_name))
                    if value and owner
                }
                new_card = GiftCard.issue_replacement(
                    original=original,
                    market=market,
                    amount=to_card,
                    now=now,
                    code_last4=last4(code),
                    order_id=order_id,
                    owner=owner,
                    pii=pii,
                )
                uow.add(
                    new_card,
                    self.register_code(uow, code, new_card.id),
                    self._sealed_delivery(uow, new_card, code, "refund", owner, pii, order_id),
                )
            original.record_refund(
                order_id=order_id,
                returned_amount=returned_amount,
                to_new_card=to_card,
                to_other_method=to_other,
                new_card_id=new_card.id if new_card else None,
                received_on=received_on,
                at=now,
                terms_version=market.terms_version,
            )
            uow.add(original)
            if request_id is not None:
                uow.add(Index.register(REFUND_REQUEST, request_id, original.id))
            return Refund(
                order_id=order_id, card_id=original.id, currency=original.currency,
                returned_amount=returned_amount, to_other_method=to_other,
                new_card=None if new_card is None else NewCard(
                    card_id=new_card.id, code=code, amount=new_card.amount,
                    expires_at=new_card.expires_at),
            )

        return self.run(command, within)

    def expire(self, as_of: datetime | None = None, *, batch_size: int = 500) -> Expiry:
        """R9: expire every active card past its date; its balance is forfeited (breakage)."""
        instant = as_of or self.now()
        due = [card_id for card_id, expires_at in self.open_cards() if expires_at <= instant]
        forfeited: dict[str, int] = defaultdict(int)
        expired = 0
        for start in range(0, len(due), batch_size):
            def command(uow: UnitOfWork, ids: list[UUID] = due[start : start + batch_size]) -> None:
                nonlocal expired
                for card_id in ids:
                    card = self._card(uow, card_id)
                    balance = card.balance
                    terms = self.markets.get(card.market).terms_version
                    if card.expire(now=instant, terms_version=terms):
                        expired += 1
                        forfeited[card.currency] += balance
                        uow.add(card)

            self.run(command)
        return Expiry(as_of=instant, expired=expired, forfeited=dict(forfeited))

    def open_cards(self) -> Iterator[tuple[UUID, datetime]]:
        """Cards still active according to the log, with their expiry (one pass, in order)."""
        topics = [get_topic(cls) for cls in OPEN_CLOSE_EVENTS]
        open_: dict[UUID, datetime] = {}
        start = 1
        while True:
            page = self.recorder.select_notifications(start, 1000, topics=topics)
            if not page:
                break
            for notification in page:
                event = self.mapper.to_domain_event(notification)
                if isinstance(event, GiftCard.Purchased):
                    open_[event.originator_id] = event.expires_at
                else:
                    open_.pop(event.originator_id, None)
            start = page[-1].id + 1
        yield from open_.items()

    def record_subject_right(
        self, subject_id: str, request_id: str, right: str, field: str = ""
    ) -> SubjectRight:
        """P2/P4, art. 16/18: record an erasure (keys already destroyed), an objection, a
        rectification (value sealed beside the store), a restriction or its lifting; no PII
        recorded. A repeated request id records nothing again."""
        now = self.now()

        def command(uow: UnitOfWork) -> SubjectRight:
            subject = uow.get(DataSubject.id_for(subject_id), DataSubject)
            subject = subject or DataSubject.open(subject_id)
            if right == "erasure":
                recorded = subject.erase(request_id=request_id, at=now)
            elif right == "objection":
                recorded = subject.object_to_profiling(request_id=request_id, at=now)
            elif right == "rectification":
                recorded = subject.rectify(request_id=request_id, field=field, at=now)
            elif right == "restriction":
                recorded = subject.restrict(request_id=request_id, at=now)
            elif right == "restriction_lifted":
                recorded = subject.lift_restriction(request_id=request_id, at=now)
            else:
                raise refuse("invalid_input", f"unknown right {right[:20]!r}")
            if recorded:
                uow.add(subject)
            return SubjectRight(subject_id=subject_id, request_id=request_id, recorded=recorded)

        return self.run(command)

    # --- queries -----------------------------------------------------------------------

    def card(self, card_id: UUID) -> GiftCard:
        return self._card(UnitOfWork(self), card_id)

    def find_by_order(self, order_id: str, code_last4: str) -> UUID:
        """Customer service's look-up: the card bought with this order whose code ends so
        (never by the code itself). A wrong order and a wrong ending are refused alike."""
        check_order_id(order_id)
        uow = UnitOfWork(self)
        index = uow.get(stream_id(PURCHASE_ORDER, order_id), Index)
        card = None if index is None else uow.get(index.target, GiftCard)
        if card is None or not hmac.compare_digest(card.code_last4, code_last4.upper()):
            raise refuse("unknown_card", "no card was bought with this order and code ending")
        return card.id

    def show(self, card_id: UUID) -> CardView:
        """The card as of now, its status as every read tells it (a lookup's too): `held`
        while an order holds it, `expired` past its validity."""
        card = self.card(card_id)
        return CardView.of(card, status=card.facts().status_at(self.now()))

    def code_delivery(self, uow: UnitOfWork, card_id: UUID) -> CodeDeliveryState:
        """Where a card's code went (R7): its delivery's id, how, and how far it got."""
        delivery = uow.get(CodeDelivery.id_for(card_id), CodeDelivery)
        if delivery is None:
            return CodeDeliveryState(delivery_id=None, by=None, status=None)
        by_email = any(name.endswith("email") for name in delivery.pii)
        return CodeDeliveryState(delivery_id=delivery.id, by="email" if by_email else None,
                                 status=delivery.status)

    def show_as_of(self, card_id: UUID, as_of: datetime) -> CardAsOf:
        """The card as it stood at a past instant, replayed from its events."""
        self.card(card_id)
        card: GiftCard | None = None
        for event in self.events.get(card_id):
            if cast(Any, event).at > as_of:
                break
            card = cast(GiftCard, cast(Any, event).mutate(card))
        if card is None:
            raise refuse("unknown_card", "the card did not exist yet at that instant")
        return CardAsOf(CardView.of(card), as_of=as_of)

    def history(self, card_id: UUID) -> CardHistory:
        self.card(card_id)
        events = []
        for event in self.events.get(card_id):
            if isinstance(event, GiftCard.HistorySealed):  # chain bookkeeping, not a fact
                continue
            data = cast(Any, event).model_dump(
                mode="json",
                exclude={"originator_id", "originator_version", "originator_topic", "pii",
                         *CHAIN_FIELDS},
            )
            events.append(
                HistoryEntry(
                    type=type(event).__name__,
                    version=event.originator_version,
                    occurred_at=data.pop("at"),
                    recorded_at=data.pop("timestamp"),
                    data=data,
                )
            )
        return CardHistory(card_id=card_id, events=tuple(events))

    def _card(self, uow: UnitOfWork, card_id: UUID) -> GiftCard:
        card = uow.get(card_id, GiftCard)
        if card is None:
            raise refuse("unknown_card", f"no gift card with id {card_id}")
        return card


OPEN_CLOSE_EVENTS = (
    GiftCard.Purchased,
    GiftCard.Redeemed,
    GiftCard.Cancelled,
    GiftCard.Expired,
)


def delivery_key_subject(card_id: UUID) -> str:
    """The vault subject whose key seals one card's code until it is delivered (then erased)."""
    return f"card-code:{card_id}"


def notice_key_subject(card_id: UUID, attempt: int) -> str:
    """The vault subject whose key seals a previous address until its re-send notice is sent
    (then erased): a rectified address is told its code went elsewhere, and then forgotten."""
    return f"notice:{card_id}:{attempt}"


def attempt_subject(customer_id: str | None, source: str) -> str:
    """Whom unknown codes count against: the customer, else the channel they came through."""
    if customer_id is not None:
        return check_id("customer_id", customer_id)
    if not source or len(source) > MAX_ORDER_ID or not source.isprintable():
        raise refuse("invalid_input", f"source must be 1 to {MAX_ORDER_ID} printable characters")
    return f"source:{source}"


def check_order_id(order_id: str) -> None:
    check_id("order_id", order_id)


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")

