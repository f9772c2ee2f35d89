"""R9: liability as of an instant is never restated: a card past its validity counts as expired
from its expiry on, whether or not the expiry sweep has run yet."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from application.commands import PurchaseCard
from composition.bootstrap import Service, build_projector
from projections.queries import liability
from projections.sources import sync_store


def fr(figures: dict[str, Any]) -> tuple[int, int]:
    (row,) = [m for m in figures["markets"] if m["market"] == "FR"]
    return row["outstanding"], row["open_cards"]


def test_r9_liability_as_of_is_the_same_before_and_after_a_late_expiry_sweep(
    service: Service, clock: Any
) -> None:
    app = service.app
    early = app.purchase(PurchaseCard(
        market="FR", amount=3000, payment_method="card", buyer_id="a", order_id="P-early",
    ))
    clock.advance(days=200)
    app.purchase(PurchaseCard(
        market="FR", amount=4000, payment_method="card", buyer_id="b", order_id="P-late",
    ))
    expiry = app.show(early.card_id).expires_at
    clock.advance(days=100)  # the early card is past its validity; nobody ran `expire`
    views = build_projector(service.settings)
    try:
        sync_store(app, views)
        instants = [clock() - timedelta(days=d) for d in (0, 50, 99)]
        before = [liability(views.db, at, "FR") for at in instants]
        assert [fr(f) for f in before] == [(4000, 1)] * 3, (expiry, before)
        swept = app.expire()
        assert swept.expired == 1
        sync_store(app, views)
        after = [liability(views.db, at, "FR") for at in instants]
        assert after == before
    finally:
        views.db.close()
