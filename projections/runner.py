"""Applies envelopes to the views with their source position in one transaction, and resumes."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from infra.db import Database
from projections import handlers, retention, schema
from projections.batch import Batch
from projections.config import FraudConfig
from projections.timefmt import TimeZones, shipped_zones

log = logging.getLogger("giftcards.projections")
STORE = "store"
# Serialises projection transactions of several runners on one PostgreSQL views database.
PG_LOCK = schema.PG_LOCK  # serializes batches with each other and with the fraud purge


@dataclass(frozen=True)
class Item:
    """One message of a source: where it came from and its envelope (None if not published)."""

    source: str
    part: int
    pos: int
    envelope: dict[str, Any] | None
    reject: str | None = None


class Projector:
    """The views in one database; `apply` is the only way they change."""

    def __init__(self, db: Database, config: FraudConfig | None = None,
                 zones: TimeZones | None = None) -> None:
        self.db = db
        self.config = config or FraudConfig()
        self.zones = zones or shipped_zones()
        schema.create(db)

    def reset(self) -> None:
        """Every view dropped and recreated empty, in one transaction, but the fraud purge's
        horizon kept (P2): a rebuild must not write purged fraud data back."""
        with self.db.tx():
            kept = retention.horizon(self.db)
            schema.drop(self.db)
            schema.create(self.db)
            if kept is not None:
                retention.keep_horizon(self.db, kept)

    def positions(self, source: str) -> dict[int, int]:
        rows = self.db.execute("SELECT part, pos FROM view_positions WHERE source = ?", [source])
        return {int(part): int(pos) for part, pos in rows}

    def apply(self, items: Iterable[Item]) -> int:
        """View changes and positions together; items at or before a stored position are
        already applied, which counts as success. Returns envelopes applied."""
        items = list(items)
        if not items:
            return 0
        applied = 0
        with self.db.tx():
            if self.db.is_postgres:
                self.db.execute("SELECT pg_advisory_xact_lock(?)", [PG_LOCK])
            seen: dict[str, dict[int, int]] = {}
            for source in {i.source for i in items}:
                seen[source] = self.positions(source)
            fresh = [i for i in items if i.pos > seen[i.source].get(i.part, -1)]
            batch = Batch(self.db, self.zones)
            self._prefetch(batch, fresh)
            last: dict[tuple[str, int], int] = defaultdict(lambda: -1)
            for item in fresh:
                reject = item.reject
                if item.envelope is not None:
                    try:
                        applied += handlers.apply(batch, item.envelope, self.config)
                    except handlers.Rejected as exc:
                        reject = str(exc)
                if reject is not None:
                    log.warning("rejected %s[%d]@%d: %s", item.source, item.part, item.pos,
                                reject)
                    self.db.execute(
                        "INSERT INTO view_rejects (source, part, pos, reason) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (source, part, pos) DO NOTHING",
                        [item.source, item.part, item.pos, reject],
                    )
                last[(item.source, item.part)] = max(last[(item.source, item.part)], item.pos)
            batch.flush()
            self.db.executemany(
                "INSERT INTO view_positions (source, part, pos) VALUES (?, ?, ?) "
                "ON CONFLICT (source, part) DO UPDATE SET pos = excluded.pos",
                [(s, p, pos) for (s, p), pos in last.items()],
            )
        if batch.rotated and not self.db.is_postgres:
            # An erased subject's pseudonym: copied out of the WAL into the zeroed cells of the
            # file (best effort: a reader holding old pages makes it wait for the next one).
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return applied

    def _prefetch(self, batch: Batch, items: list[Item]) -> None:
        tables: dict[str, schema.Table] = {}
        wanted: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for item in items:
            if item.envelope is not None:
                for table, key in handlers.wanted(item.envelope, self.config):
                    tables[table.name] = table
                    wanted[table.name].append(key)
        for name, keys in wanted.items():
            batch.prefetch(tables[name], keys)
