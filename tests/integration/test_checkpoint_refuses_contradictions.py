"""A checkpoint is never signed over a store that contradicts the latest trusted one: whoever
holds the signing key cannot delete a card's last events or a whole card and sign again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.commands import PurchaseCard, RedeemCard
from infra import checkpoints as cps
from infra.bootstrap import Service
from tests.integration.test_tamper_evidence import delete, rows

KEY = Ed25519PrivateKey.generate()


def signed_store(service: Service, clock: Any, directory: Path) -> dict[str, Any]:
    app = service.app
    spent = app.purchase(PurchaseCard(
        market="DE", amount=30000, payment_method="card", buyer_id="a", order_id="P-DE",
    ))
    app.redeem(RedeemCard(
        code=spent.code, market="DE", order_id="O-DE", order_total=30000, customer_id="a",
        source="test",
    ))
    app.purchase(PurchaseCard(
        market="FR", amount=3000, payment_method="card", buyer_id="b", order_id="P-FR",
    ))
    return cps.create(app.recorder, app.mapper, KEY, clock(), directory)


def test_deleting_a_spent_cards_last_event_then_signing_is_refused(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    latest = signed_store(service, clock, tmp_path / "cps")
    card = latest_card(latest, "DE")
    version = max(v for c, v, _, _ in rows(service) if c == card)
    delete(service, card, version)  # the DE card is spendable again
    with pytest.raises(cps.CheckpointError) as refused:
        cps.create(service.app.recorder, service.app.mapper, KEY, clock(), tmp_path / "cps",
                   latest)
    (problem,) = refused.value.problems
    assert problem["card_id"] == card and "events were deleted" in problem["problem"]


def test_deleting_a_whole_card_then_signing_is_refused(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    latest = signed_store(service, clock, tmp_path / "cps")
    card = latest_card(latest, "FR")
    for c, version, _, _ in rows(service):
        if c == card:
            delete(service, card, version)
    with pytest.raises(cps.CheckpointError) as refused:
        cps.create(service.app.recorder, service.app.mapper, KEY, clock(), tmp_path / "cps",
                   latest)
    assert [(p["card_id"], "missing from the store" in p["problem"])
            for p in refused.value.problems] == [(card, True)]


def test_a_store_that_only_grew_is_signed(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    latest = signed_store(service, clock, tmp_path / "cps")
    service.app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id="c", order_id="P-NEW",
    ))
    signed = cps.create(service.app.recorder, service.app.mapper, KEY, clock(),
                        tmp_path / "cps", latest)
    assert signed["header"]["cards"] == latest["header"]["cards"] + 1


def latest_card(checkpoint: dict[str, Any], market: str) -> str:
    (card,) = [c for c, head in checkpoint["heads"].items() if head[2] == market]
    return card
