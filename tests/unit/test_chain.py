"""Each card event carries its predecessor's hash and its own, stamped when recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from application.commands import CancelCard, PurchaseCard
from domain.chain import link
from infra.bootstrap import Service
from infra.chains import card_chain, unsealed_cards
from projections.verify import verify_store
from tests.fixtures.make_old_store import STORE, service_for


def test_new_card_events_chain_to_their_predecessor_as_stored(memory_service: Service) -> None:
    app = memory_service.app
    card = app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="c", order_id="P1",
    )).card_id
    app.cancel(CancelCard(card_id=card, order_id="P1"))
    stored = list(app.recorder.select_events(card))  # type: ignore[attr-defined]
    assert len(stored) == 3
    prev = None
    for event in stored:
        fields = orjson.loads(event.state)
        assert fields["prev_hash"] == prev
        recomputed = link(prev, event.topic, {**fields, "originator_id": str(card),
                                              "originator_version": event.originator_version})
        assert fields["event_hash"] == recomputed
        prev = recomputed
    assert app.repository.get(card).chain_head == prev
    assert card_chain(app.recorder, app.mapper, card).problems == []


def test_old_store_sealed_then_an_edit_of_its_unchained_history_is_named(tmp_path: Path) -> None:
    """`audit seal` on a store written before the chain: every card gets a HistorySealed event
    whose prev_hash covers the old events; editing one of them afterwards is named."""
    copy = tmp_path / "old_store.sqlite3"
    shutil.copyfile(STORE, copy)
    service = service_for(copy)
    try:
        app = service.app
        cards = unsealed_cards(app.recorder, app.mapper)
        assert len(cards) == 6  # four bought, two refunds to a new card
        sealed = [app.seal_history(card) for card in cards]
        assert unsealed_cards(app.recorder, app.mapper) == []
        assert verify_store(app, []) == []
        card = cards[0]
        versions = {str(s.card_id): s.version for s in sealed}
        key = card.hex
        (state,) = service.db.execute(
            "SELECT state FROM stored_events WHERE originator_version = 1 AND originator_id = ?",
            [key],
        )[0]
        fields = orjson.loads(state)
        fields["amount"] += 1
        service.db.execute(
            "UPDATE stored_events SET state = ? WHERE originator_version = 1 AND originator_id = ?",
            [orjson.dumps(fields), key],
        )
        named = {(p["card_id"], p["version"]) for p in verify_store(app, [])}
        assert named == {(str(card), versions[str(card)])}
        assert app.history(card).events  # the seal is not part of the card's history
    finally:
        service.close()
