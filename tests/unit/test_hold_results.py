"""The hold use cases answer frozen, typed results; the entry points' presenters turn them into
exactly the JSON the OpenAPI document declares."""

from __future__ import annotations

import dataclasses

import pytest

from application.commands import AuthorizeHold, CaptureHold, LookUpCard, VoidHold
from application.holds import Holds
from application.results import CardLookup, HoldsReleased, HoldState, Redemption
from entrypoints.http import responses as answers
from entrypoints.results import hold_json, lookup_json, redemption_json, released_json
from infra.bootstrap import Service
from tests.conftest import FixedClock
from tests.unit.rules_helpers import buy


def test_r10_r11_a_card_held_then_captured_answers_typed_results_presented_as_documented(
    memory_service: Service, clock: FixedClock,
) -> None:
    app, holds = memory_service.app, Holds(memory_service.app, hold_seconds=60)
    card = buy(app)
    found = holds.lookup(LookUpCard(code=card.code, market="FR", source="test"))
    assert isinstance(found, CardLookup) and str(found.card_id) == str(card.card_id)
    held = holds.authorize(AuthorizeHold(
        code=card.code, market="FR", order_id="o-1", order_total=3000, customer_id=None,
        source="test",
    ))
    assert isinstance(held, HoldState) and held.amount == 3000
    with pytest.raises(dataclasses.FrozenInstanceError):
        held.status = "released"  # type: ignore[misc]
    paid = holds.capture(CaptureHold(order_id="o-1"))
    assert isinstance(paid, Redemption) and (paid.applied, paid.forfeited) == (3000, 2000)
    shown = holds.show(order_id="o-1")
    assert shown == HoldState("o-1", found.card_id, "captured")

    answers.Lookup.model_validate(lookup_json(found), strict=True)
    answers.Hold.model_validate(hold_json(held), strict=True)
    answers.Redemption.model_validate(redemption_json(paid), strict=True)
    assert hold_json(shown) == {"order_id": "o-1", "card_id": str(card.card_id),
                                "status": "captured"}
    assert hold_json(held)["held_until"].endswith("Z")


def test_r10_a_released_hold_and_the_sweep_are_typed_too(
    memory_service: Service, clock: FixedClock,
) -> None:
    app, holds = memory_service.app, Holds(memory_service.app, hold_seconds=60)
    card = buy(app)
    holds.authorize(AuthorizeHold(
        code=card.code, market="FR", order_id="o-2", order_total=1000, customer_id=None,
        source="test",
    ))
    voided = holds.void(VoidHold(order_id="o-2"))
    assert (voided.status, voided.amount) == ("voided", None)
    holds.authorize(AuthorizeHold(
        code=card.code, market="FR", order_id="o-3", order_total=1000, customer_id=None,
        source="test",
    ))
    clock.advance(seconds=61)
    swept = holds.release_timed_out()
    assert isinstance(swept, HoldsReleased) and swept.released == 1
    answers.Sweep.model_validate(released_json(swept), strict=True)
    assert set(hold_json(voided)) == {"order_id", "card_id", "status"}
