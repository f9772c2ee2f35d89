"""Several processes on one SQLite store: one starting must not break another's connection."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson

from application.commands import PurchaseCard
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET, FixedClock

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def test_a_cli_run_beside_a_live_connection_loses_none_of_its_writes(
    tmp_path: Path, clock: FixedClock
) -> None:
    """Regression: the store file was opened and closed at every start (to make it 0600), which
    drops the POSIX locks a live connection of that process holds; the CLI's connection then
    took itself for the last one and deleted the WAL the long-lived `serve` was writing to."""
    env = {
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "GIFTCARDS_SECRET_KEY": SECRET,
    }
    service = build(load_settings(env), clock=clock)
    try:
        shown = subprocess.run([GIFTCARDS, "--json", "liability"], env=env,
                               capture_output=True, check=False, timeout=120)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert "error" not in orjson.loads(shown.stdout)
        card = service.app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="S", order_id="after-the-cli",
        ))
        fresh = sqlite3.connect(tmp_path / "store.sqlite3")
        try:
            rows = fresh.execute("SELECT COUNT(*) FROM stored_events").fetchone()
        finally:
            fresh.close()
        assert rows[0] >= 2, "the purchase made after the CLI run is not in the store"
        assert service.app.show(card.card_id).status == "active"
    finally:
        service.close()
