"""Leases in the store database: at most one live holder of a named role (the active relay)."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from infra.db import Database
from infra.service import Service

TABLE = """CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
)"""


def instance_id() -> str:
    """host:pid:random — unique per process, readable in logs and in `leases`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Holder:
    holder: str
    expires_at: float


def lease_clock(service: Service) -> Callable[[], float]:
    """The database's clock (infra.dbclock) when the service measures it, else this host's."""
    return service.clock.epoch if service.clock is not None else time.time


class Lease:
    """A row (name, holder, expires_at): the holder renews it; anyone takes it once expired.
    Expiry is seconds since the epoch on the database's clock (`lease_clock`), so holders on
    hosts whose clocks drift agree on it; a host past the skew bound takes no lease (its clock
    raises ClockSkewError). Correctness does not rest on the lease
    (Kafka's transactional fencing does that): it keeps two relays from fencing each other
    back and forth."""

    def __init__(
        self,
        db: Database,
        name: str,
        holder: str,
        seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.name = name
        self.holder = holder
        self.seconds = seconds
        self.clock = clock

    def acquire(self) -> bool:
        """Take or renew the lease; True if this holder has it now."""
        now = self.clock()
        # One statement: the conditional upsert is atomic on SQLite and PostgreSQL alike.
        self.db.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
            (self.name, self.holder, now + self.seconds, now),
        )
        current = current_holder(self.db, self.name)
        return current is not None and current.holder == self.holder

    def release(self) -> None:
        """Give the lease up at once (a graceful stop): a standby need not wait for expiry."""
        self.db.execute(
            "DELETE FROM leases WHERE name = ? AND holder = ?", (self.name, self.holder)
        )


def current_holder(db: Database, name: str) -> Holder | None:
    """Who holds `name` (possibly expired), for standbys' logs and status queries."""
    rows = db.execute("SELECT holder, expires_at FROM leases WHERE name = ?", (name,))
    return Holder(str(rows[0][0]), float(rows[0][1])) if rows else None
