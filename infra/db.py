"""Plain SQL over the configured database (SQLite file or PostgreSQL), one dialect, through
connections that come back after the server restarts."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

# The process's connection budget (GIFTCARDS_DB_POOL_SIZE): every part of a process (relay,
# consumers, projector, deliveries, API) and the event store library draw from ONE pool per
# database URL, so a process never holds more than this many connections (docs/operations.md).
POOL_SIZE = 10
WAIT_FOR_CONNECTION_S = 5.0  # then PoolTimeout, a transient error the caller waits out
CONNECT_TIMEOUT_S = 5
PING_IDLE_S = 1.0
# Every statement of the service is a short one (key lookups, batched by `= ANY` or unnest,
# COPYs, upserts): compiling it (JIT: 20+ ms) never pays, yet the planner's estimates on tables
# without statistics yet (a store just written, views being rebuilt) cross jit_above_cost with
# batches of a few dozen keys. Measured: 32 lookups in one query took 24 ms, 23 of them JIT.
NO_JIT = "-c jit=off"


def session_options(url: str) -> str:
    """The `options` of the service's PostgreSQL sessions: the URL's own, then NO_JIT."""
    given = conninfo_to_dict(url).get("options")
    return f"{given} {NO_JIT}" if given else NO_JIT


class Database:
    """`?` placeholders on both backends; transactions via `tx()`.

    PostgreSQL goes through a pool: a connection idle for more than PING_IDLE_S is pinged before
    use and replaced if the server went away, and a connection found broken in use is replaced
    when it comes back. A statement outside `tx()` takes a connection for itself; a transaction
    keeps one to its end, and if that connection is lost the transaction fails as a whole (see
    infra.transient for retrying it)."""

    def __init__(self, url: str, pool_size: int | None = None) -> None:
        self.url = url
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        # Only this process can open it: no lease to hand over, no helper process to read it.
        self.in_memory = url.startswith("sqlite:///:memory:")
        self._pool: ConnectionPool[Any] | None = None
        self._held: Any = None  # the connection of the open transaction (SQLite: always)
        if self.is_postgres:
            self._pool = shared_pool(url, pool_size)
        else:
            path = private_file(sqlite_path(url))
            # kafka-python runs rebalance listeners on its IO thread while the owner blocks in
            # poll(): the connection is used by one thread at a time, not always the same one.
            self._held = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._held.execute("PRAGMA journal_mode=WAL")
            self._held.execute("PRAGMA synchronous=NORMAL")
        self._depth = 0
        # Staging tables are temporary, so per connection.
        self._staged: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.is_postgres else sql

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._held is not None or self._pool is None:
            yield self._held
            return
        conn = self._pool.getconn()
        try:
            conn.row_factory = tuple_row  # the library's borrowers use dict rows
            yield conn
        finally:
            _used[conn] = time.monotonic()
            self._pool.putconn(conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            cursor = conn.execute(self._sql(sql), tuple(params))
            return list(cursor.fetchall()) if cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self._connection() as conn:
            if self.is_postgres:
                with conn.cursor() as cursor:
                    cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
            else:
                conn.executemany(sql, [tuple(r) for r in rows])

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
        with self._connection() as conn, conn.cursor() as cursor, cursor.copy(copying) as copy:
            for row in rows:
                copy.write_row(row)

    def upsert(
        self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]],
        *, add: bool = False,
    ) -> None:
        """Insert or replace many rows by key (`add`: a row already there gets the new values
        added to its own, a set-based increment). PostgreSQL: COPY into a staging table, then one
        INSERT .. SELECT (COPY encodes rows in C; executemany costs ~10 us of Python a row)."""
        if not rows:
            return
        cols = ", ".join(columns)
        updates = ", ".join(
            f"{c} = {table}.{c} + excluded.{c}" if add else f"{c} = excluded.{c}"
            for c in columns if c not in key
        )
        conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        if not self.is_postgres:
            marks = ", ".join("?" * len(columns))
            self.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {conflict}", rows)
            return
        stage = f"stage_{table}"
        with self.tx():
            conn = self._held
            staged = self._staged.setdefault(conn, set())
            if stage not in staged:
                # Created in this transaction: a rollback forgets it (see tx()).
                conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                    f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                staged.add(stage)
            with conn.cursor() as cursor:
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
        """One transaction (re-entrant: an inner `tx()` joins the outer one). Any failure,
        COMMIT's included, rolls it back and is raised: nothing is half applied."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        with self._connection() as conn:
            self._depth, self._held = 1, conn
            try:
                conn.execute("BEGIN" if self.is_postgres else "BEGIN IMMEDIATE")
                yield self
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
            finally:
                self._depth = 0
                if self.is_postgres:
                    self._held = None

    def _rollback(self, conn: Any) -> None:
        if self.is_postgres:
            # Temporary tables created in the transaction are gone with it.
            self._staged.pop(conn, None)
        elif not conn.in_transaction:
            return  # BEGIN itself failed (locked): nothing to undo
        # A lost connection cannot roll back (the server already did): keep the first error.
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")

    def close(self) -> None:
        if self._pool is not None:
            release_pool(self._pool)
            self._pool = None
        elif self._held is not None:
            self._held.close()


# When each pooled connection was last given back (connections of every pool, weakly).
_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _check(conn: Any) -> None:
    """The pool's check before handing out a connection: one used within PING_IDLE_S is taken
    as alive (a batch loop or a busy API does not pay a round trip per statement; should it be
    dead after all, the statement fails transiently and the pool replaces it); an older one is
    pinged."""
    now = time.monotonic()
    if now - _used.get(conn, float("-inf")) > PING_IDLE_S:
        ConnectionPool.check_connection(conn)
    _used[conn] = now  # lent now: idle from its return at the latest


# The process's pools by URL, and how many users (Database objects, library recorders) each has.
_pools: dict[str, ConnectionPool[Any]] = {}
_users: dict[int, int] = {}
_pools_lock = threading.Lock()


def shared_pool(url: str, size: int | None = None) -> ConnectionPool[Any]:
    """The process's one pool for `url` (opened by its first user, with `size` or POOL_SIZE
    connections at most; closed when its last user releases it)."""
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None or pool.closed:
            pool = _pools[url] = _pool(url, size or POOL_SIZE)
        _users[id(pool)] = _users.get(id(pool), 0) + 1
        return pool


def release_pool(pool: ConnectionPool[Any]) -> None:
    with _pools_lock:
        left = _users.get(id(pool), 1) - 1
        if left > 0:
            _users[id(pool)] = left
            return
        _users.pop(id(pool), None)
        for url, known in list(_pools.items()):
            if known is pool:
                del _pools[url]
    pool.close()


class LibraryPool:
    """The event store library's view of the process's pool: what its datastore calls (open,
    connection, close), lending connections with the dict rows it reads."""

    def __init__(self, url: str, size: int | None = None, timeout: float = 1.0) -> None:
        self.shared = shared_pool(url, size)
        self.timeout = timeout  # the library's wait for a connection (POSTGRES_CONNECT_TIMEOUT)
        self.kwargs: dict[str, Any] = {}  # options are in the URL already

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        """Opened by its first user already."""

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        with self.shared.connection(timeout or self.timeout) as conn:
            conn.row_factory = dict_row
            try:
                yield conn
            finally:
                conn.row_factory = tuple_row
                _used[conn] = time.monotonic()

    def close(self) -> None:
        if self.shared is not None:
            release_pool(self.shared)
            self.shared = None  # type: ignore[assignment]


def _pool(url: str, size: int) -> ConnectionPool[Any]:
    pool: ConnectionPool[Any] = ConnectionPool(
        url,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                "options": session_options(url)},
        min_size=1,
        max_size=size,
        timeout=WAIT_FOR_CONNECTION_S,
        check=_check,
        num_workers=1,
        name="giftcards-db",
        open=False,
    )
    # Waits for the first connection, so a wrong URL or a server that is down fails here, as
    # a plain connect did; once open, the pool reconnects on its own.
    try:
        pool.open(wait=True, timeout=WAIT_FOR_CONNECTION_S)
    except PoolTimeout:
        pool.close()
        # The pool only says it timed out: one plain connect raises the server's own reason
        # (refused: transient; a wrong password or database name: not).
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        raise
    except BaseException:
        pool.close()
        raise
    return pool


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` to a filesystem path."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {url}")
    raw = unquote(url[len("sqlite:///") :])
    return Path(raw)


def private_file(path: Path) -> Path:
    """The store holds personal data: its directory is created 0700 and its file 0600 before
    SQLite opens it (SQLite gives its -wal and -shm files the database file's mode)."""
    if str(path) == ":memory:":
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # Only a file that does not exist yet is opened here: closing ANY descriptor of a file
        # drops every POSIX lock the process holds on it, so opening and closing the store
        # beside a live SQLite connection made that connection believe itself alone; it then
        # deleted the WAL under the other processes' feet ("disk I/O error", lost writes).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    elif path.stat().st_mode & 0o077:  # a store created before this rule: made private
        path.chmod(0o600)
    return path


def postgres_hosts(url: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of a PostgreSQL URL, several for a cluster
    (`postgresql://u:p@host1:5432,host2:5432/db?target_session_attrs=read-write`: libpq tries
    them in turn and keeps the one that accepts writes)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    hosts = []
    for part in netloc.split(","):
        host, _, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
        if not host:  # no port given
            host, port = part, ""
        hosts.append((unquote(host.strip("[]")) or "127.0.0.1", int(port) if port else 5432))
    return hosts


def describe_hosts(url: str) -> str:
    """host:port of each of the URL's servers (never its user or password)."""
    return ",".join(f"{host}:{port}" for host, port in postgres_hosts(url))


def keys_commit_with_events(url: str) -> bool:
    """Whether the recorder `eventsourcing_env` names for `url` stores the vault keys a unit of
    work created in its events' transaction (the file and server stores' do; memory has none)."""
    return url != "memory://"


def eventsourcing_env(url: str, pool_size: int | None = None) -> dict[str, str]:
    """The eventsourcing library's persistence settings for a database URL (on PostgreSQL, its
    connections from the process's pool of `pool_size`: see shared_pool)."""
    if url.startswith(("postgresql://", "postgres://")):
        parsed = urlsplit(url)
        # The library requires a host and port, yet connects through the shared pool, which
        # uses the whole URL (every host of a cluster).
        host, port = postgres_hosts(url)[0]
        return {
            "PERSISTENCE_MODULE": "infra.recorders:PostgresFactoryWithOptions",
            "SHARED_POOL_URL": url,
            "SHARED_POOL_SIZE": str(pool_size or POOL_SIZE),
            # The URL's query (sslmode=verify-full&sslrootcert=…): kept for every connection.
            "POSTGRES_CONNECTION_OPTIONS": parsed.query,
            "POSTGRES_DBNAME": parsed.path.lstrip("/"),
            "POSTGRES_HOST": host,
            "POSTGRES_PORT": str(port),
            "POSTGRES_USER": unquote(parsed.username or ""),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            # Seconds to wait for a pooled connection (the library's default is 30). Its recorder
            # retries a statement 10 times: with 1 s, an outage surfaces after ~12 s as an error
            # our loops wait out and log (infra.transient) instead of blocking silently, and
            # each new request makes the pool try to connect again, so it is back at once.
            "POSTGRES_CONNECT_TIMEOUT": "1",
            "PROCESS_RECORDER_TOPIC": "infra.recorders:BinaryPostgresProcessRecorder",
        }
    if url == "memory://":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    path = private_file(sqlite_path(url))
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
        "PROCESS_RECORDER_TOPIC": "infra.recorders:KeysSQLiteProcessRecorder",
    }
