"""Queries of the cards: a card now, at a past instant, its history, its code's delivery."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from application.card_base import PURCHASE_ORDER, CardsBase, check_order_id
from application.results import CardAsOf, CardHistory, CardView, CodeDeliveryState, HistoryEntry
from application.unit_of_work import UnitOfWork
from domain.chain import CHAIN_FIELDS
from domain.delivery import CodeDelivery
from domain.errors import refuse
from domain.giftcard import GiftCard
from domain.streams import Index, stream_id


class CardQueries(CardsBase):
    """What a card is, was and went through: show, show as of, history, where its code went."""

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
