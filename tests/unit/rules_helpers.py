"""Given/when/then helpers for the rule tests: buy, pay, read events, expect a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.cards import GiftCards
from application.commands import PurchaseCard, RedeemCard
from application.results import Purchase, Redemption
from application.unit_of_work import UnitOfWork
from domain.errors import DomainError
from infra.bootstrap import Service

BUYER = "cust-1"


def buy(app: GiftCards, within: UnitOfWork | None = None, **overrides: Any) -> Purchase:
    """A valid purchase (50.00 EUR on FR by bank card) unless a test overrides a field."""
    command: dict[str, Any] = {
        "market": "FR",
        "amount": 5000,
        "payment_method": "card",
        "buyer_id": BUYER,
        "order_id": f"purchase-{uuid4()}",
    }
    command.update(overrides)
    return app.purchase(PurchaseCard(**command), within=within)


def pay(app: GiftCards, code: str | None, order_id: str, total: int,
        within: UnitOfWork | None = None, **overrides: Any) -> Redemption:
    """Redeem `code` on an order of `total` minor units on FR unless overridden."""
    command: dict[str, Any] = {
        "code": code,
        "market": "FR",
        "order_id": order_id,
        "order_total": total,
        "customer_id": BUYER,
        "source": "test",
    }
    command.update(overrides)
    return app.redeem(RedeemCard(**command), within=within)


def events(app: GiftCards, card_id: str | UUID) -> list[Any]:
    return list(app.events.get(UUID(str(card_id))))


def types(app: GiftCards, card_id: str | UUID) -> list[str]:
    return [type(e).__name__ for e in events(app, card_id)]


def stored_bytes(app: GiftCards) -> bytes:
    """Every stored event record, exactly as the recorder keeps it."""
    return b"\n".join(n.state for n in app.recorder.select_notifications(1, 10**6))


def event_count(service: Service) -> int:
    return len(service.app.recorder.select_notifications(1, 10**6))


@contextmanager
def refused(code: str) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    """Then: the command is refused with this stable code."""
    with pytest.raises(DomainError) as caught:
        yield caught
    assert caught.value.code == code, caught.value.message
