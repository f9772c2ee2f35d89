"""`giftcards project` killed with SIGKILL mid-run and restarted: views equal a clean rebuild."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.bootstrap import build
from infra.config import load_settings
from infra.db import Database
from projections import schema
from projections.runner import STORE, Projector
from projections.sources import store_total, sync_store
from tests.unit.rules_helpers import buy, pay

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [GIFTCARDS, "--json", "project", "--source", "store"],
        env={**os.environ, **env, "GIFTCARDS_PROJECTION_BATCH": "50"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def position(views: Database) -> int:
    try:
        rows = views.execute("SELECT pos FROM view_positions WHERE source = ?", [STORE])
    except Exception:  # table not created yet by the child
        return 0
    return int(rows[0][0]) if rows else 0


def test_sigkill_mid_batch_then_restart_equals_clean_rebuild(env_for, clock, tmp_path):
    env = {**env_for, "GIFTCARDS_VIEWS_URL": f"sqlite:///{tmp_path / 'views.sqlite3'}"}
    service = build(load_settings(env), clock=clock)
    with service.app.batch() as uow:
        for i in range(1500):
            card = buy(service.app, buyer_id=f"b{i % 40}", amount=2000 + i, within=uow)
            if i % 3 == 0:
                pay(service.app, card.code, f"o{i}", 1000, customer_id=f"c{i % 7}", within=uow)
    total = store_total(service.app)
    views = Database(env["GIFTCARDS_VIEWS_URL"])
    child = start(env)
    deadline = time.monotonic() + 60
    while position(views) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    killed_at = position(views)
    assert 0 < killed_at < total, "the kill must land mid-run"
    child = start(env)
    while position(views) < total and time.monotonic() < deadline + 60:
        time.sleep(0.1)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0, out
    assert b'"stopped":"SIGTERM"' in out
    clean = Projector(Database(f"sqlite:///{tmp_path / 'clean.sqlite3'}"))
    sync_store(service.app, clean)
    assert schema.dump(views) == schema.dump(clean.db)
    service.close()
