"""Batch prefetch: many streams in one query, the same answers as one read per stream."""

from __future__ import annotations

from uuid import uuid4

from application.card_base import PURCHASE_ORDER
from application.commands import PurchaseCard
from application.unit_of_work import UnitOfWork
from domain.giftcard import GiftCard
from domain.streams import Index, stream_id
from infra.bootstrap import Service


def test_r3_prefetch_knows_absent_keys_and_still_loads_existing_ones(service: Service) -> None:
    app = service.app
    bought = app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="c", order_id="known",
    ))
    known, unknown = stream_id(PURCHASE_ORDER, "known"), stream_id(PURCHASE_ORDER, "new")
    card_id = bought.card_id
    assert app.load_streams is not None  # SQL stores answer in one query
    loaded = app.load_streams([known, unknown, card_id, uuid4()])
    assert set(loaded) == {known, card_id}
    assert [type(e).__name__ for e in loaded[card_id]] == ["Purchased", "Activated"]
    uow = UnitOfWork(app)
    uow.prefetch([known, unknown, card_id])
    assert uow.absent == {unknown} and set(uow.loaded) == {known, card_id}
    index = uow.get(known, Index)
    assert index is not None and index.target == card_id
    card = uow.get(card_id, GiftCard)
    assert card is not None and card.__dict__ == app.repository.get(card_id).__dict__
    assert uow.get(card_id, Index) is None  # a stream of another kind is not an index
    assert uow.get(unknown, Index) is None
    # A stream created in the batch after the prefetch is seen by later commands of the batch.
    uow.add(Index.register(PURCHASE_ORDER, "new", bought.card_id))
    assert uow.get(unknown, Index) is not None


def test_r3_repeated_order_in_one_batch_after_prefetch_is_still_one_card(service: Service) -> None:
    app = service.app
    with app.batch() as uow:
        uow.prefetch([stream_id(PURCHASE_ORDER, "twice")])
        first = app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="c", order_id="twice",
        ), within=uow)
        again = app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="c", order_id="twice",
        ), within=uow)
    assert str(again.card_id) == str(first.card_id) and again.code is None
