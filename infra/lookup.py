"""Many event streams loaded in one query, per backend (batch prefetch of keys and cards)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, Recorder, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder

from domain.ports import StreamLoader
from infra.db import Database

# SQLite builds may cap bound parameters at 999.
CHUNK = 900


def stream_loader(recorder: Recorder, mapper: Mapper[UUID], db: Database) -> StreamLoader | None:
    """A loader for SQL recorders; None (one read per stream) for in-memory storage."""
    if isinstance(recorder, PostgresAggregateRecorder) and db.is_postgres:
        # The table name comes from the library's own configuration, not from input.
        pg_sql = (
            "SELECT originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} "
            # The ids sent in binary (%b): psycopg writes a text array of hundreds of UUIDs
            # at several times the CPU, in the consumer's thread, for every batch.
            "WHERE originator_id = ANY(%b) ORDER BY originator_id, originator_version"
        )

        def pg_load(ids: list[UUID]) -> dict[UUID, list[DomainEventProtocol[UUID]]]:
            # One statement on an autocommit connection: one round trip, a consistent
            # snapshot (the library's own reads add a BEGIN and a ROLLBACK to each).
            rows = db.execute(pg_sql, (ids,))
            return _group(mapper, ((_uuid(r[0]), r) for r in rows))

        return pg_load
    if isinstance(recorder, SQLiteAggregateRecorder):
        lite = recorder

        def sqlite_load(ids: list[UUID]) -> dict[UUID, list[DomainEventProtocol[UUID]]]:
            rows: list[Any] = []
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                with lite.datastore.transaction(commit=False) as cursor:
                    cursor.execute(
                        "SELECT originator_id, originator_version, topic, state "
                        f"FROM {lite.events_table_name} "
                        f"WHERE originator_id IN ({','.join('?' * len(chunk))}) "
                        "ORDER BY originator_id, originator_version",
                        [i.hex for i in chunk],
                    )
                    rows += cursor.fetchall()
            return _group(mapper, ((UUID(r[0]), r) for r in rows))

        return sqlite_load
    return None


def _uuid(value: Any) -> UUID:
    """A uuid column's value comes as a UUID: no round trip through its text."""
    return value if isinstance(value, UUID) else UUID(str(value))


def _group(mapper: Mapper[UUID], rows: Any) -> dict[UUID, list[DomainEventProtocol[UUID]]]:
    streams: dict[UUID, list[DomainEventProtocol[UUID]]] = defaultdict(list)
    for stream, row in rows:
        stored = StoredEvent(
            originator_id=stream,
            originator_version=row[1],
            topic=row[2],
            state=bytes(row[3]),
        )
        streams[stream].append(mapper.to_domain_event(stored))
    return dict(streams)
