"""Group commit on a real store: concurrent batches of one card's authorizations
conflict in the store, are redone on fresh state, and hold the card exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from application.commands import CaptureHold
from application.groupcommit import run_together
from application.holds import Holds
from domain.errors import DomainError
from infra.bootstrap import Service
from tests.unit.rules_helpers import buy
from tests.unit.test_group_commit import authorization

WRITERS, BATCH = 4, 8


def test_r10_concurrent_batches_hold_one_card_once(service: Service) -> None:
    app = service.app
    holds = Holds(app)
    card = buy(app)

    def batch(writer: int) -> list[Any]:
        commands = [authorization(holds, card.code, f"order-{writer}-{n}")
                    for n in range(BATCH)]
        return run_together(app, commands)

    with ThreadPoolExecutor(WRITERS) as pool:
        outcomes = [done for batch_done in pool.map(batch, range(WRITERS))
                    for done in batch_done]
    won = [done.value for done in outcomes if done.error is None]
    refused = [done.error for done in outcomes if isinstance(done.error, DomainError)]
    assert len(won) == 1, outcomes
    assert [r.code for r in refused] == ["card_on_hold"] * (WRITERS * BATCH - 1)
    events = [type(e).__name__ for e in app.events.get(card.card_id)]
    assert events.count("Held") == 1
    assert holds.capture(CaptureHold(order_id=won[0].order_id)).applied == 3000
