"""PostgreSQL's lookup row (giftcards_events_card_facts) is a cache the audit checks: edited by
hand, it is not used by lookups (the events answer) and `audit verify` names it."""

from __future__ import annotations

from typing import Any

import pytest

from application.commands import PurchaseCard
from application.holds import Holds
from composition.bootstrap import Service, build_projector
from projections.sources import sync_store
from projections.verify import verify_card
from tests.integration.test_card_facts import full, lookup_fast


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_lookup_row_edited_by_hand_is_not_shown_and_audit_verify_names_it(
    service: Service, clock: Any
) -> None:
    app = service.app
    card = app.purchase(PurchaseCard(
        market="FR", amount=3000, payment_method="card", buyer_id="c", order_id="P-30",
    ))
    holds = Holds(app, hold_seconds=600)
    cid = card.card_id
    views = build_projector(service.settings)
    try:
        sync_store(app, views)
        assert lookup_fast(service, holds, card.code).balance == 3000
        assert verify_card(app, views.db, cid)[1] == []
        table = f"{app.recorder.events_table_name}_card_facts"  # type: ignore[attr-defined]
        service.db.execute(f"UPDATE {table} SET balance = 50000 WHERE card_id = ?", [str(cid)])
        # The row is not used: the API reads the card in full, which shows the true balance.
        assert lookup_fast(service, holds, card.code) is None
        assert full(holds, card.code).balance == 3000
        problems = [p["problem"] for p in verify_card(app, views.db, cid)[1]]
        assert any("does not match its MAC" in p for p in problems), problems
        assert any("lookup row balance is 50000, replay gives 3000" in p for p in problems)
    finally:
        views.db.close()
