"""Which database errors are waited out (the server, not the data) and how the waiting goes."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import psycopg
import psycopg.errors as pg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError
from psycopg_pool import PoolClosed, PoolTimeout

from infra import transient
from infra.db import Database
from infra.transient import Stopped, is_transient, retry_transient


def wrapped(cause: BaseException) -> BaseException:
    """As the event store library raises them: its own class, `from` the driver's error."""
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("the connection is closed"),
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", '
                                 "port 1 failed: Connection refused"),
        pg.AdminShutdown("terminating connection due to administrator command"),
        pg.CrashShutdown("terminating connection because of crash of another server process"),
        pg.CannotConnectNow("the database system is starting up"),
        pg.SerializationFailure("could not serialize access due to concurrent update"),
        pg.DeadlockDetected("deadlock detected"),
        pg.TooManyConnections("sorry, too many clients already"),
        pg.LockNotAvailable("canceling statement due to lock timeout"),
        PoolTimeout("couldn't get a connection after 5.00 sec"),
        sqlite3.OperationalError("database is locked"),
        wrapped(pg.AdminShutdown("terminating connection due to administrator command")),
        wrapped(sqlite3.OperationalError("database is locked")),
    ],
    ids=lambda exc: type(exc).__name__ + ":" + str(exc)[:30],
)
def test_faults_of_the_database_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        pg.UniqueViolation("duplicate key value violates unique constraint"),
        pg.SyntaxError("syntax error at or near"),
        pg.UndefinedTable("relation does not exist"),
        pg.InvalidTextRepresentation("invalid input syntax for type uuid"),
        pg.DatabaseDropped("database dropped"),
        psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", '
                                 'port 5432 failed: FATAL:  password authentication failed'),
        psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", '
                                 'port 5432 failed: FATAL:  database "gc" does not exist'),
        PoolClosed("the pool is closed"),
        sqlite3.OperationalError("no such table: cards"),
        sqlite3.IntegrityError("UNIQUE constraint failed"),
        IntegrityError("duplicate key"),
        wrapped(pg.UniqueViolation("duplicate key value violates unique constraint")),
        ValueError("bad amount"),
        RecursionError("maximum recursion depth exceeded"),
    ],
    ids=lambda exc: type(exc).__name__ + ":" + str(exc)[:30],
)
def test_faults_of_the_work_are_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_an_error_raised_while_handling_a_transient_one_is_its_own() -> None:
    """Only explicit causes count: a bug hit in an except block must not be retried forever."""
    try:
        try:
            raise pg.AdminShutdown("terminating connection")
        except pg.AdminShutdown:
            raise RecursionError("maximum recursion depth exceeded")  # noqa: B904
    except RecursionError as exc:
        assert exc.__context__ is not None
        assert not is_transient(exc)


def test_a_locked_sqlite_database_is_waited_out_and_the_transaction_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's real "database is locked" (another connection's write transaction) is transient;
    the waiting retries the whole transaction until the lock is gone, and says so once."""
    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}"
    db, other = Database(url), Database(url)
    db.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    db._held.execute("PRAGMA busy_timeout = 0")  # fail at once instead of after 30 s
    holder = other.tx()
    holder.__enter__()  # BEGIN IMMEDIATE: the write lock
    attempts = []

    def write() -> None:
        attempts.append(1)
        if len(attempts) == 3:
            holder.__exit__(None, None, None)  # the other writer commits
        with db.tx():
            db.execute("INSERT INTO t (x) VALUES (1)")

    monkeypatch.setattr(transient, "FIRST_DELAY_S", 0.01)
    with caplog.at_level(logging.WARNING, logger="giftcards.db"):
        retry_transient(write, what="test writer")
    assert db.execute("SELECT x FROM t") == [(1,)]
    assert len(attempts) == 3  # locked twice (BEGIN IMMEDIATE), written on the third
    waits = [r for r in caplog.records if "waits for the database" in r.getMessage()]
    assert len(waits) == 1, "at most one line per 10 s of waiting"
    assert "OperationalError: database is locked" in waits[0].getMessage()
    db.close()
    other.close()


def test_waiting_ends_when_asked_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transient, "FIRST_DELAY_S", 0.01)
    calls = []

    def down() -> None:
        calls.append(1)
        raise pg.AdminShutdown("terminating connection due to administrator command")

    with pytest.raises(Stopped):
        retry_transient(down, what="test", stop=lambda: len(calls) >= 3)
    assert len(calls) == 3


def test_other_errors_are_raised_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise pg.UniqueViolation("duplicate key")

    with pytest.raises(pg.UniqueViolation):
        retry_transient(broken, what="test")
    assert calls == [1]
