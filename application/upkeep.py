"""Upkeep of the cards' records: expiry, sealing old histories, recording subject rights."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from uuid import UUID

from eventsourcing.utils import get_topic

from application.card_base import CardsBase
from application.results import Expiry, HistorySealed, SubjectRight
from application.unit_of_work import UnitOfWork
from domain.errors import refuse
from domain.giftcard import GiftCard
from domain.subjects import DataSubject

OPEN_CLOSE_EVENTS = (
    GiftCard.Purchased,
    GiftCard.Redeemed,
    GiftCard.Cancelled,
    GiftCard.Expired,
)


class Upkeep(CardsBase):
    """Expiry (R9), sealing histories stored before the chain, subject rights recorded."""

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
