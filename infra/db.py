"""Plain SQL connections to the configured database (SQLite file or PostgreSQL), one dialect."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg


class Database:
    """A connection that speaks `?` placeholders on both backends; transactions via `tx()`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        self._conn: Any
        if self.is_postgres:
            self._conn = psycopg.connect(url, autocommit=True)
        else:
            path = sqlite_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            # kafka-python runs rebalance listeners on its IO thread while the owner blocks in
            # poll(): the connection is used by one thread at a time, not always the same one.
            self._conn = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._depth = 0
        self._staged: set[str] = set()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.is_postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._conn.execute(self._sql(sql), tuple(params))
        return list(cursor.fetchall()) if cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.is_postgres:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
        else:
            self._conn.executemany(sql, [tuple(r) for r in rows])

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert many new rows (a key already there is an error). PostgreSQL: one COPY."""
        if not rows:
            return
        cols = ", ".join(columns)
        if not self.is_postgres:
            marks = ", ".join("?" * len(columns))
            self.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
            return
        copying = f"COPY {table} ({cols}) FROM STDIN"
        with self._conn.cursor() as cursor, cursor.copy(copying) as copy:
            for row in rows:
                copy.write_row(row)

    def upsert(
        self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert or replace many rows by key. PostgreSQL: COPY into a staging table, then one
        INSERT .. SELECT (COPY encodes rows in C; executemany costs ~10 us of Python a row)."""
        if not rows:
            return
        cols = ", ".join(columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        if not self.is_postgres:
            marks = ", ".join("?" * len(columns))
            self.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {conflict}", rows)
            return
        stage = f"stage_{table}"
        if stage not in self._staged:
            self._conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._staged.add(stage)
        with self.tx(), self._conn.cursor() as cursor:
            with cursor.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            # Moving the rows out leaves the staging table empty for the next call.
            cursor.execute(
                f"WITH staged AS (DELETE FROM {stage} RETURNING *) "
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM staged {conflict}"
            )

    @contextmanager
    def tx(self) -> Iterator[Database]:
        """One transaction (re-entrant: an inner `tx()` joins the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._depth = 1
        self._conn.execute("BEGIN" if self.is_postgres else "BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0

    def close(self) -> None:
        self._conn.close()


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` to a filesystem path."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {url}")
    raw = unquote(url[len("sqlite:///") :])
    return Path(raw)


def eventsourcing_env(url: str) -> dict[str, str]:
    """The eventsourcing library's persistence settings for a database URL."""
    if url.startswith(("postgresql://", "postgres://")):
        parsed = urlparse(url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parsed.path.lstrip("/"),
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or ""),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "PROCESS_RECORDER_TOPIC": "infra.recorders:BinaryPostgresProcessRecorder",
        }
    if url == "memory://":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
    }
