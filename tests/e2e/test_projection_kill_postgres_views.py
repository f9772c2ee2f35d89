"""`giftcards project` writing PostgreSQL views, killed with SIGKILL while batches are being
applied, then restarted: the views (breakage added up set-based included) equal a clean rebuild."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from dev.services import drop_postgres_database, fresh_postgres_database
from infra.bootstrap import build
from infra.config import load_settings
from infra.db import Database
from projections import schema
from projections.runner import Projector
from projections.sources import store_total, sync_store
from tests.e2e.test_projection_crash import position, start
from tests.unit.rules_helpers import buy, pay

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def open_transaction(views: Database) -> bool:
    """The projector's session holds a transaction open on the views (a batch under way)."""
    rows = views.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL")
    return bool(rows[0][0])


@pytest.mark.parametrize("backend", ["postgres"])
def test_sigkill_inside_a_postgres_views_batch_resumes_to_a_clean_rebuild(
    env_for: dict[str, str], clock: Any, postgres_server: str
) -> None:
    views_url = fresh_postgres_database(postgres_server)
    clean_url = fresh_postgres_database(postgres_server)
    env = {**env_for, "GIFTCARDS_VIEWS_URL": views_url}
    service = build(load_settings(env), clock=clock)
    views = Database(views_url)
    try:
        with service.app.batch() as uow:
            for i in range(1200):
                market = ("FR", "DE", "GB")[i % 3]
                card = buy(service.app, buyer_id=f"b{i % 40}", amount=2000 + i, market=market,
                           within=uow)
                if i % 4 == 0:  # a partial payment closes the card: the rest is breakage
                    pay(service.app, card.code, f"o{i}", 1000, customer_id=f"c{i % 7}",
                        market=market, within=uow)
                if i % 100 == 99:
                    clock.advance(days=20)  # purchases, hence expiries, over several months
        clock.advance(days=6 * 365)
        service.app.expire()  # expired breakage, in several months' rows
        total = store_total(service.app)
        child = start(env)
        deadline = time.monotonic() + 90
        while not (position(views) > 0 and open_transaction(views)):
            assert time.monotonic() < deadline, "the projector never got under way"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed_at = position(views)
        assert 0 < killed_at < total, "the kill must land mid-run"
        child = start(env)
        while position(views) < total:
            assert time.monotonic() < deadline + 90, "the restarted projector did not catch up"
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0, out
        clean = Projector(Database(clean_url))
        sync_store(service.app, clean)
        expected = schema.dump(clean.db)
        assert len(expected["view_breakage"]) > 3
        assert schema.dump(views) == expected
        clean.db.close()
    finally:
        views.close()
        service.close()
        drop_postgres_database(views_url)
        drop_postgres_database(clean_url)
