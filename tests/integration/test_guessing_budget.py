"""R8: one guessing budget for every path that can tell whether a code exists (redemptions,
lookups, authorizations and their dry runs), per customer and per source, on both stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from application.commands import AuthorizeHold, LookUpCard, RedeemCard
from application.holds import Holds
from domain.errors import DomainError
from infra.bootstrap import Service
from tests.unit.rules_helpers import buy

LIMIT = 10  # per customer, domain/markets.toml
CEILING = 30  # per source, domain/markets.toml


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except DomainError as refusal:
        return refusal.code
    return "ok"


def dry_run(holds: Holds, code: str, order: str, customer: str | None, source: str) -> str:
    return outcome(lambda: holds.authorize(AuthorizeHold(
        code=code, market="FR", order_id=order, order_total=1000, customer_id=customer,
        source=source,
    ), simulate=True))


def test_r8_dry_runs_spend_the_budget_and_are_refused_past_it(service: Service) -> None:
    holds = Holds(service.app)
    answers = [dry_run(holds, f"RANDOM-{n:04d}", f"dry-{n}", None, "key-a") for n in range(60)]
    assert answers == ["unknown_code"] * LIMIT + ["too_many_attempts"] * (60 - LIMIT)


def test_r8_dry_run_misses_lock_the_customer_out_of_real_calls(service: Service) -> None:
    app = service.app
    holds = Holds(app)
    card = buy(app)
    assert dry_run(holds, card.code, "dry-ok", "cust-d", "key-b") == "ok"
    for n in range(LIMIT):
        assert dry_run(holds, f"RANDOM-{n}", f"dry-{n}", "cust-d", "key-b") == "unknown_code"
    # Locked out: a valid code is answered as an unknown one is, on every path.
    for code in (card.code, "RANDOM-NEW"):
        assert dry_run(holds, code, "dry-x", "cust-d", "key-b") == "too_many_attempts"
        assert outcome(lambda code=code: holds.authorize(AuthorizeHold(
            code=code, market="FR", order_id="real-1", order_total=1000, customer_id="cust-d",
            source="key-b",
        ))) == "too_many_attempts"
        assert outcome(lambda code=code: holds.lookup(LookUpCard(
            code=code, market="FR", customer_id="cust-d", source="key-b",
        ))) == "too_many_attempts"
        assert outcome(lambda code=code: app.redeem(RedeemCard(
            code=code, market="FR", order_id="real-2", order_total=1000, customer_id="cust-d",
            source="checkout",
        ))) == "too_many_attempts"
    assert holds.lookup(LookUpCard(
        code=card.code, market="FR", customer_id="cust-e", source="key-b",
    )).status == "active"


@pytest.mark.parametrize("path", ["lookup", "authorize", "redeem"])
def test_r8_a_source_has_a_ceiling_whatever_customer_ids_it_names(
    service: Service, path: str
) -> None:
    app = service.app
    holds = Holds(app)
    card = buy(app)

    def attempt(code: str, n: int) -> str:
        customer, order = f"cust-{path}-{n}", f"{path}-{n}"
        if path == "lookup":
            return outcome(lambda: holds.lookup(LookUpCard(
                code=code, market="FR", customer_id=customer, source="src",
            )))
        if path == "authorize":
            return outcome(lambda: holds.authorize(AuthorizeHold(
                code=code, market="FR", order_id=order, order_total=1000, customer_id=customer,
                source="src",
            )))
        return outcome(lambda: app.redeem(RedeemCard(
            code=code, market="FR", order_id=order, order_total=1000, customer_id=customer,
            source="src",
        )))

    # Each customer well under its own limit; the source reaches its ceiling.
    assert [attempt(f"RANDOM-{n}", n) for n in range(CEILING)] == ["unknown_code"] * CEILING
    assert attempt(card.code, CEILING + 1) == "too_many_attempts"
    assert attempt("RANDOM-MORE", CEILING + 2) == "too_many_attempts"
    # Another source is not affected.
    assert holds.lookup(LookUpCard(
        code=card.code, market="FR", customer_id="x", source="other",
    )).status == "active"


def test_r8_a_source_locked_out_alone_is_not_reopened_by_naming_a_customer(
    service: Service,
) -> None:
    holds = Holds(service.app)
    card = buy(service.app)
    for n in range(LIMIT):
        assert outcome(lambda n=n: holds.lookup(LookUpCard(
            code=f"RANDOM-{n}", market="FR", source="key-c",
        ))) == "unknown_code"
    assert outcome(lambda: holds.lookup(LookUpCard(
        code=card.code, market="FR", source="key-c", customer_id="fresh-customer",
    ))) == "too_many_attempts"
