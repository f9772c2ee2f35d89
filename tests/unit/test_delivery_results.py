"""Deliveries answer typed results; the CLI presents them as the JSON it always printed (R7)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from uuid import UUID

import pytest

from application.results import DeliveryRetry, FailedDelivery
from entrypoints.results import failed_deliveries_json, retry_json

CARD = UUID("0d1534c6-c16e-4a26-a6e2-78c7f3b5f81e")


def test_r7_failed_deliveries_are_presented_as_the_alert_with_their_count() -> None:
    failed = FailedDelivery(card_id=CARD, kind="purchase", reason="address_refused",
                            detail="550 no such user",
                            failed_at=datetime(2026, 3, 1, 9, tzinfo=UTC))
    with pytest.raises(dataclasses.FrozenInstanceError):
        failed.reason = "other"  # type: ignore[misc]
    assert failed_deliveries_json([failed]) == {"failed": [{
        "card_id": str(CARD), "kind": "purchase", "reason": "address_refused",
        "detail": "550 no such user", "failed_at": "2026-03-01T09:00:00Z"}], "count": 1}
    assert failed_deliveries_json([]) == {"failed": [], "count": 0}


def test_r7_a_retry_is_presented_with_its_attempt() -> None:
    assert retry_json(DeliveryRetry(CARD, "pending", 2, True)) == {
        "card_id": str(CARD), "status": "pending", "attempt": 2,
        "previous_address_notified": True}
