"""Existence of many event streams in one query, per backend (batch prefetch of natural keys)."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import Recorder
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder

from domain.ports import StreamLookup


def stream_lookup(recorder: Recorder) -> StreamLookup | None:
    """A lookup for SQL recorders; None (one read per key) for in-memory storage."""
    if isinstance(recorder, PostgresAggregateRecorder):
        pg = recorder
        pg_sql = (
            f"SELECT DISTINCT originator_id FROM {pg.events_table_name} "
            "WHERE originator_id = ANY(%s)"
        )

        def pg_existing(ids: list[UUID]) -> set[UUID]:
            with pg.datastore.transaction(commit=False) as cursor:
                cursor.execute(pg_sql, (ids,))
                return {UUID(str(row["originator_id"])) for row in cursor.fetchall()}

        return pg_existing
    if isinstance(recorder, SQLiteAggregateRecorder):
        lite = recorder

        def sqlite_existing(ids: list[UUID]) -> set[UUID]:
            found: set[UUID] = set()
            # SQLite's default limit on bound parameters is 999 on old builds: chunk.
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                marks = ",".join("?" * len(chunk))
                with lite.datastore.transaction(commit=False) as cursor:
                    cursor.execute(
                        f"SELECT DISTINCT originator_id FROM {lite.events_table_name} "
                        f"WHERE originator_id IN ({marks})",
                        [i.hex for i in chunk],
                    )
                    found |= {UUID(row[0]) for row in cursor.fetchall()}
            return found

        return sqlite_existing
    return None
