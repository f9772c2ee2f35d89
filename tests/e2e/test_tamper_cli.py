"""Tamper evidence as an auditor tries it with the CLI: an edit is named and a rebuild refuses."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from infra.bootstrap import build
from infra.config import load_settings
from tests.e2e.test_cli import cli

NOW = "2026-01-12T10:00:00Z"


def edit_purchase(env: dict[str, str], card: str, **changes: Any) -> None:
    """What anyone with write access to the database can do: rewrite the stored Purchased."""
    service = build(load_settings(env))
    try:
        table = service.app.recorder.events_table_name  # type: ignore[attr-defined]
        key = card if service.db.is_postgres else UUID(card).hex
        (state,) = service.db.execute(
            f"SELECT state FROM {table} WHERE originator_version = 1 AND originator_id = ?", [key]
        )[0]
        fields = {**orjson.loads(bytes(state)), **changes}
        service.db.execute(
            f"UPDATE {table} SET state = ? WHERE originator_version = 1 AND originator_id = ?",
            [orjson.dumps(fields), key],
        )
    finally:
        service.close()


def test_edit_then_rebuild_is_refused_and_named(env_for: dict[str, str]) -> None:
    status, bought, _ = cli(env_for, NOW, "purchase", "--market", "FR", "--amount", "50",
                            "--payment-method", "card", "--buyer-id", "C1")
    assert status == 0
    card = bought["card_id"]
    status, signed, err = cli(env_for, NOW, "audit", "checkpoint")
    assert status == 0, err
    assert signed["cards"] == 1
    status, verified, _ = cli(env_for, NOW, "audit", "verify", "--all")
    assert status == 0 and verified["ok"] and verified["not_yet_checkpointed"] == 0
    # The second case: a flipped character of code_last4, before any view query.
    _, _, _ = cli(env_for, NOW, "purchase", "--market", "FR", "--amount", "20",
                  "--payment-method", "card", "--buyer-id", "C2")
    edit_purchase(env_for, card, amount=900000)
    status, verified, _ = cli(env_for, NOW, "audit", "verify", "--all")
    assert status == 1 and not verified["ok"]
    assert {(p["card_id"], p["version"]) for p in verified["problems"]} >= {(card, 1)}
    assert verified["not_yet_checkpointed"] == 2  # the second card's two events
    status, refused, _ = cli(env_for, NOW, "projections", "rebuild")
    assert status == 1 and "refused" in refused
    status, verified, _ = cli(env_for, NOW, "audit", "verify", "--all")
    assert status == 1  # still named after the refused rebuild
    status, liability, _ = cli(env_for, NOW, "liability", "--market", "FR")
    assert status == 0 and "9000" not in orjson.dumps(liability).decode()
