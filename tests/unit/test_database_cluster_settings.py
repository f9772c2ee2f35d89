"""A PostgreSQL cluster in the settings: every node in one URL, the primary kept by libpq, and
what production accepts of replication stated in one variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import ConfigError, load_settings
from infra.db import describe_hosts, eventsourcing_env, postgres_hosts
from infra.replication import Replication, ReplicationRiskError, check_replication, risk

CLUSTER = ("postgresql://giftcards:pw@10.0.0.1:5432,10.0.0.2:5433/giftcards"
           "?target_session_attrs=read-write")
SYNCHRONOUS = Replication(in_recovery=False, synchronous_commit="on",
                          synchronous_standby_names="node1")


def env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"GIFTCARDS_DATA_DIR": str(tmp_path / "var"), **more}


def test_a_cluster_url_names_every_node_and_the_store_library_gets_one_host() -> None:
    assert postgres_hosts(CLUSTER) == [("10.0.0.1", 5432), ("10.0.0.2", 5433)]
    assert postgres_hosts("postgresql://u:p@db/x") == [("db", 5432)]
    assert describe_hosts(CLUSTER) == "10.0.0.1:5432,10.0.0.2:5433"
    library = eventsourcing_env(CLUSTER)
    # The library's own settings must parse; its connections come from the shared pool,
    # which connects with the whole URL (every node).
    assert (library["POSTGRES_HOST"], library["POSTGRES_PORT"]) == ("10.0.0.1", "5432")
    assert library["SHARED_POOL_URL"] == CLUSTER
    assert library["POSTGRES_USER"] == "giftcards" and library["POSTGRES_DBNAME"] == "giftcards"


def test_several_hosts_without_read_write_sessions_are_refused(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path, GIFTCARDS_DATABASE_URL=CLUSTER)).database_url == CLUSTER
    anyone = CLUSTER.split("?")[0]
    with pytest.raises(ConfigError, match="target_session_attrs=read-write"):
        load_settings(env(tmp_path, GIFTCARDS_DATABASE_URL=anyone))


def test_replication_statement_defaults_to_synchronous_and_refuses_typos(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).database_replication == "synchronous"
    stated = env(tmp_path, GIFTCARDS_DATABASE_REPLICATION="single-node")
    assert load_settings(stated).database_replication == "single-node"
    with pytest.raises(ConfigError, match="GIFTCARDS_DATABASE_REPLICATION"):
        load_settings(env(tmp_path, GIFTCARDS_DATABASE_REPLICATION="async"))


@pytest.mark.parametrize(
    ("commit", "names"),
    [("on", ""), ("local", "node1"), ("off", "node1"), ("remote_write", "node1")],
)
def test_commits_not_synchronously_replicated_are_a_named_risk(commit: str, names: str) -> None:
    seen = Replication(in_recovery=False, synchronous_commit=commit,
                       synchronous_standby_names=names)
    code, message = risk(seen, "synchronous") or ("", "")
    assert code == "asynchronous_replication_refused"
    assert "failover would lose them" in message and "GIFTCARDS_DATABASE_REPLICATION" in message
    # Stated explicitly, the risk is accepted.
    assert risk(seen, "asynchronous") is None
    assert risk(seen, "single-node") is None


def test_synchronous_replication_is_accepted_and_a_standby_never() -> None:
    assert risk(SYNCHRONOUS, "synchronous") is None
    assert risk(Replication(False, "remote_apply", "ANY 1 (node0, node1)"), "synchronous") is None
    standby = Replication(in_recovery=True, synchronous_commit="on",
                          synchronous_standby_names="")
    for stated in ("synchronous", "single-node", "asynchronous"):
        assert (risk(standby, stated) or ("",))[0] == "database_not_primary"


class Server:
    """A PostgreSQL as the start check sees it: what it says of its replication."""

    is_postgres = True

    def __init__(self, seen: Replication) -> None:
        self.seen = seen

    def execute(self, sql: str) -> list[tuple[bool, str, str]]:
        return [(self.seen.in_recovery, self.seen.synchronous_commit,
                 self.seen.synchronous_standby_names)]


def test_a_part_restarted_while_the_standby_is_away_is_not_refused_after_a_safe_start() -> None:
    url = "postgresql://giftcards@pg-1,pg-2/giftcards?target_session_attrs=read-write"
    alone = Server(Replication(False, "on", ""))  # Patroni cleared the names: standby away
    with pytest.raises(ReplicationRiskError):
        check_replication(alone, "synchronous", url)  # type: ignore[arg-type]
    check_replication(Server(SYNCHRONOUS), "synchronous", url)  # type: ignore[arg-type]
    check_replication(alone, "synchronous", url)  # type: ignore[arg-type]  # waited out
    standby = Server(Replication(True, "on", ""))
    with pytest.raises(ReplicationRiskError):  # a standby is never written to
        check_replication(standby, "synchronous", url)  # type: ignore[arg-type]
    with pytest.raises(ReplicationRiskError):  # another database's first start still checked
        check_replication(alone, "synchronous", url + "&x=1")  # type: ignore[arg-type]
