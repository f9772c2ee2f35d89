"""The use cases of cards, holds and checkout take one frozen command each, and nothing else
but how to run it (`within=`, `simulate=`): there is no keyword-argument variant beside it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from application import commands
from application.cards import GiftCards
from application.checkout import Checkout
from application.commands import (
    AuthorizeHold,
    CancelCard,
    CaptureHold,
    LookUpCard,
    PurchaseCard,
    RedeemCard,
    RefundOrder,
    VoidHold,
)
from application.holds import Holds
from infra.bootstrap import Service
from tests.unit.rules_helpers import BUYER

USE_CASES: list[tuple[Callable[..., Any], type]] = [
    (GiftCards.purchase, PurchaseCard),
    (GiftCards.redeem, RedeemCard),
    (GiftCards.refund, RefundOrder),
    (GiftCards.cancel, CancelCard),
    (Holds.lookup, LookUpCard),
    (Holds.plan_lookup, LookUpCard),
    (Holds.authorize, AuthorizeHold),
    (Holds.authorize_keys, AuthorizeHold),
    (Holds.capture, CaptureHold),
    (Holds.void, VoidHold),
    (Checkout.order, PurchaseCard),
    (Checkout.pay, RedeemCard),
    (Checkout.return_items, RefundOrder),
    (Checkout.cancel, CancelCard),
]
HOW_TO_RUN = {"within", "simulate"}
COMMANDS = [c for c in vars(commands).values()
            if isinstance(c, type) and c.__module__ == commands.__name__]


@pytest.mark.parametrize(("use_case", "command"), USE_CASES,
                         ids=[f"{u.__qualname__}" for u, _ in USE_CASES])
def test_a_use_case_takes_its_command_and_only_how_to_run_it(
    use_case: Callable[..., Any], command: type
) -> None:
    hints = typing.get_type_hints(use_case)
    parameters = list(inspect.signature(use_case).parameters.values())[1:]  # after self
    if parameters and parameters[0].name == "uow":  # checkout: in the consumer's batch
        parameters = parameters[1:]
    first, *rest = parameters
    assert hints[first.name] is command
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert {p.name for p in rest} <= HOW_TO_RUN
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)


def test_every_use_case_command_is_covered() -> None:
    assert {c for _, c in USE_CASES} == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.__name__)
def test_a_command_is_frozen_slotted_and_named_field_by_field(command: type) -> None:
    params = dataclasses.fields(command)
    assert dataclasses.is_dataclass(command) and command.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in vars(command)
    assert all(f.kw_only for f in params)
    with pytest.raises(TypeError):
        command(*["x"] * len(params))


def test_every_command_field_says_what_it_serves() -> None:
    """Each field carries a comment (the rule it serves): the command documents its input."""
    source = Path(commands.__file__).read_text()
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for field in node.body:
                if isinstance(field, ast.AnnAssign):
                    assert "  # " in lines[field.lineno - 1], (node.name, lines[field.lineno - 1])


def test_r3_r11_the_keyword_variant_is_gone_and_the_command_runs(memory_service: Service) -> None:
    app = memory_service.app
    with pytest.raises(TypeError):
        app.purchase(market="FR", amount=5000, payment_method="card",  # type: ignore[call-arg]
                     buyer_id=BUYER, order_id="kw-1")
    bought = app.purchase(PurchaseCard(market="FR", amount=5000, payment_method="card",
                                       buyer_id=BUYER, order_id="typed-1"))
    again = PurchaseCard(market="FR", amount=5000, payment_method="card", buyer_id=BUYER,
                         order_id="typed-1")
    assert app.purchase(again).card_id == bought.card_id  # R3: the same order, the same card
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.amount = 1  # type: ignore[misc]
    assert bought.code is not None
    paid = app.redeem(RedeemCard(code=bought.code, market="FR", order_id="shop-1",
                                 order_total=8000, source="test", customer_id=BUYER))
    assert (paid.applied, paid.remaining_to_pay) == (5000, 3000)  # R11/R12
    assert app.order_market("shop-1") == "FR"
