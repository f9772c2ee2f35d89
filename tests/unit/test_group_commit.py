"""Group commit: concurrent commands in one transaction, each with its own answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from application.commands import AuthorizeHold
from application.groupcommit import run_together
from application.holds import Holds
from application.unit_of_work import UnitOfWork
from domain.errors import DomainError
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET, FixedClock
from tests.unit.rules_helpers import buy


def authorization(holds: Holds, code: str, order_id: str) -> Any:
    return lambda uow: holds.authorize(AuthorizeHold(
        code=code, market="FR", order_id=order_id, order_total=3000, customer_id="cust-2",
        source="test",
    ), within=uow)


def broken(holds: Holds, code: str, order_id: str) -> Any:
    """A command with a bug: it holds the card, then fails (not a refusal)."""
    def command(uow: UnitOfWork) -> Any:
        authorization(holds, code, order_id)(uow)
        raise RuntimeError("a bug")
    return command


@settings(max_examples=25, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=30))
def test_r10_one_batch_of_authorizations_of_one_card_holds_it_once(bugs: list[bool]) -> None:
    """Each command gets its own answer; a failing one neither fails its batch-mates nor
    leaves its half-done hold behind; exactly one hold, the first sound command's (a buggy
    command after it is refused before its bug)."""
    service = build(load_settings({"GIFTCARDS_DATABASE_URL": "memory://",
                                   "GIFTCARDS_SECRET_KEY": SECRET}), clock=FixedClock())
    app = service.app
    holds = Holds(app)
    card = buy(app)
    commands = [(broken if bug else authorization)(holds, card.code, f"order-{n}")
                for n, bug in enumerate(bugs)]
    keys = holds.authorize_keys(AuthorizeHold(
        code=card.code, market="FR", order_id="order-0", order_total=3000, customer_id="cust-2",
        source="test",
    ))
    done = run_together(app, commands, keys)
    assert len(done) == len(bugs)
    first = min((n for n, bug in enumerate(bugs) if not bug), default=len(bugs))
    for n, (bug, outcome) in enumerate(zip(bugs, done, strict=True)):
        if bug and n < first:  # it failed after holding the card: redone without it
            assert isinstance(outcome.error, RuntimeError)
        elif n == first:
            assert outcome.error is None and outcome.value.order_id == f"order-{n}"
        else:
            assert isinstance(outcome.error, DomainError)
            assert outcome.error.code == "card_on_hold"
    held = [type(e).__name__ for e in app.events.get(card.card_id)].count("Held")
    assert held == (1 if first < len(bugs) else 0)
    service.close()
