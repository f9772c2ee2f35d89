"""Batch prefetch of natural keys: one query per batch, same answers as one read per key."""

from __future__ import annotations

from uuid import UUID, uuid4

from domain.application import PURCHASE_ORDER, UnitOfWork
from domain.giftcard import GiftCard
from domain.streams import Index, stream_id
from infra.bootstrap import Service


def test_r3_prefetch_knows_absent_keys_and_still_loads_existing_ones(service: Service) -> None:
    app = service.app
    bought = app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="c",
                          order_id="known")
    known, unknown = stream_id(PURCHASE_ORDER, "known"), stream_id(PURCHASE_ORDER, "new")
    assert app.existing_streams is not None  # SQL stores answer in one query
    assert app.existing_streams([known, unknown, uuid4()]) == {known}
    uow = UnitOfWork(app)
    uow.prefetch([known, unknown, UUID(bought["card_id"])])
    assert uow.absent == {unknown}
    index = uow.get(known, Index)
    assert index is not None and index.target == UUID(bought["card_id"])
    assert uow.get(UUID(bought["card_id"]), GiftCard) is not None
    assert uow.get(unknown, Index) is None
    # A stream created in the batch after the prefetch is seen by later commands of the batch.
    uow.add(Index.register(PURCHASE_ORDER, "new", UUID(bought["card_id"])))
    assert uow.get(unknown, Index) is not None


def test_r3_repeated_order_in_one_batch_after_prefetch_is_still_one_card(service: Service) -> None:
    app = service.app
    with app.batch() as uow:
        uow.prefetch([stream_id(PURCHASE_ORDER, "twice")])
        first = app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="c",
                             order_id="twice")
        again = app.purchase(market="FR", amount=5000, payment_method="card", buyer_id="c",
                             order_id="twice")
    assert again["card_id"] == first["card_id"] and again["code"] is None
