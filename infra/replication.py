"""Production writes only where an acknowledged commit survives the loss of the primary."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from infra.config import ConfigError
from infra.db import Database

log = logging.getLogger("giftcards.db")
# synchronous_commit values that wait for the synchronous standby to have the commit.
REPLICATED_COMMITS = ("on", "remote_apply")
# The databases this process already started on safely. A part restarted later (serve restarts
# its relay, consumers, checkpoints) while the standby is away is not refused: Patroni's
# synchronous_mode promotes only a synchronous standby, so a degraded cluster loses no
# acknowledged commit by failover; the process waits it out, as it does a failover.
_started_safely: set[str] = set()


class ReplicationRiskError(ConfigError):
    """The database would acknowledge commits that a failover can lose (or it is a standby)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Replication:
    """What the server says of itself, as this service's session sees it."""

    in_recovery: bool
    synchronous_commit: str
    synchronous_standby_names: str


def observe(db: Database) -> Replication:
    """One round trip; every part is readable without privileges."""
    [(in_recovery, commit, names)] = db.execute(
        "SELECT pg_is_in_recovery(), current_setting('synchronous_commit'), "
        "current_setting('synchronous_standby_names')"
    )
    return Replication(bool(in_recovery), str(commit), str(names).strip())


def risk(seen: Replication, stated: str) -> tuple[str, str] | None:
    """(code, message) of what the server `seen` would lose under GIFTCARDS_DATABASE_REPLICATION
    `stated`; None if it is what production accepts."""
    if seen.in_recovery:
        return ("database_not_primary",
                "GIFTCARDS_DATABASE_URL reaches a standby (read-only): name every node of the "
                "cluster with target_session_attrs=read-write")
    if stated in ("asynchronous", "single-node"):
        return None
    if seen.synchronous_standby_names and seen.synchronous_commit in REPLICATED_COMMITS:
        return None
    return ("asynchronous_replication_refused",
            f"PostgreSQL acknowledges commits no standby has yet (synchronous_standby_names="
            f"{seen.synchronous_standby_names!r}, synchronous_commit="
            f"{seen.synchronous_commit!r}): a failover would lose them while Kafka may already "
            "carry their events. Use Patroni's synchronous_mode (docs/operations.md), or state "
            "GIFTCARDS_DATABASE_REPLICATION=single-node (no standby) or =asynchronous "
            "(accepting the loss)")


def check_replication(db: Database, stated: str, url: str) -> None:
    """Raises ReplicationRiskError (exit 2 on the CLI) when production would risk commits; says
    in the log what it accepted instead of synchronous replication. Once this process started
    safely on `url`, a later synchronous-standby absence is only logged."""
    if not db.is_postgres:
        return  # a SQLite file is one node by nature
    found = risk(observe(db), stated)
    if found is not None and found[0] == "asynchronous_replication_refused" \
            and url in _started_safely:
        log.warning("no synchronous standby at the moment (%s): carrying on, as this process "
                    "started on a synchronously replicated cluster", found[0])
        return
    if found is not None:
        raise ReplicationRiskError(*found)
    _started_safely.add(url)
    if stated == "single-node":
        log.warning("the database runs on a single node (GIFTCARDS_DATABASE_REPLICATION="
                    "single-node): losing its machine loses every commit the last backup lacks")
    elif stated == "asynchronous":
        log.warning("asynchronous replication accepted (GIFTCARDS_DATABASE_REPLICATION="
                    "asynchronous): a failover loses the commits the standby had not received")
