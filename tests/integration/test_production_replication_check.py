"""Production refuses, at start, a PostgreSQL whose commits a failover could lose (exit 2 with a
code naming the risk), unless the setting states a single node or accepts asynchronous
replication."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dev.services import drop_postgres_database, fresh_postgres_database
from infra.bootstrap import build
from infra.config import Settings, load_settings
from infra.replication import ReplicationRiskError
from tests.conftest import SECRET

pytestmark = pytest.mark.postgres


def production(url: str, tmp_path: Path, **more: str) -> Settings:
    """The settings of a production start on `url` (TLS and mail, refused without, are not
    what this test is about: the environment is switched after they were read)."""
    env = {"GIFTCARDS_DATABASE_URL": url, "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_DATA_DIR": str(tmp_path / "var"), **more}
    return load_settings(env).model_copy(update={"env": "production"})


def test_production_refuses_a_database_without_synchronous_standby(
    postgres_server: str, tmp_path: Path
) -> None:
    url = fresh_postgres_database(postgres_server)  # one server: no synchronous standby
    try:
        with pytest.raises(ReplicationRiskError) as refused:
            build(production(url, tmp_path))
        assert refused.value.code == "asynchronous_replication_refused"
        assert "synchronous_standby_names=''" in str(refused.value)
        # Nothing was made: no table at all.
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                                ).fetchone() == (0,)
    finally:
        drop_postgres_database(url)


@pytest.mark.parametrize("stated", ["single-node", "asynchronous"])
def test_production_starts_on_a_stated_single_node_or_accepted_asynchronous_replication(
    postgres_server: str, tmp_path: Path, stated: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_postgres_database(postgres_server)
    try:
        service = build(production(url, tmp_path, GIFTCARDS_DATABASE_REPLICATION=stated))
        service.close()
        assert any("GIFTCARDS_DATABASE_REPLICATION" in r.getMessage() for r in caplog.records)
    finally:
        drop_postgres_database(url)
