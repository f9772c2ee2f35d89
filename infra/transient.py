"""Which database errors are passing faults, and waiting them out with backoff."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from eventsourcing.persistence import PersistenceError
from psycopg_pool import PoolClosed

from infra.ratelog import RateLimitedLog, backoff

T = TypeVar("T")
# Every error a database driver or the event store library raises (the library wraps the
# drivers' errors in its own): an entry point answers these without a traceback.
DATABASE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error, sqlite3.Error, PersistenceError)
log = logging.getLogger("giftcards.db")

# SQLSTATE classes of faults outside any statement's content: 08 connection exception,
# 40 transaction rollback (serialization failure, deadlock), 53 insufficient resources (too many
# connections, disk full), 57 operator intervention (admin or crash shutdown, starting up).
TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
TRANSIENT_STATES = frozenset({"55P03"})  # lock_not_available (lock_timeout)
PERMANENT_STATES = frozenset({"57P04"})  # database_dropped: waiting will not bring it back
# A configuration to fix, not a fault to wait out: libpq's FATAL reasons at connection time.
# The TLS ones: the server's certificate is not signed by sslrootcert's CA or names another
# host, no root certificate file, or a server without TLS under sslmode=verify-*.
REFUSED_LOGIN = (
    "authentication failed", "does not exist", "no pg_hba.conf entry",
    "certificate verify failed", "does not match host name", "root certificate file",
    "server does not support SSL", "no encryption",
)
FIRST_DELAY_S = 0.1
# Seconds an HTTP client is told to wait (Retry-After) when the database is away: a restart
# or a Patroni failover is over in a few seconds.
DATABASE_RETRY_AFTER_S = 2
MAX_DELAY_S = 5.0
LOG_EVERY_S = 10.0


class Stopped(Exception):
    """Asked to stop while waiting for the database to come back."""


def is_transient(exc: BaseException) -> bool:
    """True if `exc` (or an error it was explicitly raised from, as the event store library
    wraps psycopg's and sqlite3's) is a fault of the database, not of the data: retrying the
    same work later can succeed. Implicit context is not followed: an error raised while
    handling a transient one is an error of its own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _transient_itself(current):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, PoolClosed):  # closed by this process: shutting down
        return False
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:
            # No server answer at all: refused, lost, closed or no pooled connection in time;
            # unless the server refused who we are (libpq reports it as text, no SQLSTATE).
            return isinstance(exc, psycopg.OperationalError) and not any(
                reason in str(exc) for reason in REFUSED_LOGIN
            )
        if state in PERMANENT_STATES:
            return False
        return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES
    if isinstance(exc, sqlite3.OperationalError):
        # SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock past the timeout.
        message = str(exc).lower()
        return "locked" in message or "busy" in message
    return False


def refused_login(exc: BaseException) -> str | None:
    """libpq's reason when the database refused this connection's settings (credentials,
    certificate, TLS) rather than being away; None otherwise. It names no password."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, psycopg.OperationalError) and current.sqlstate is None:
            message = str(current)
            if any(reason in message for reason in REFUSED_LOGIN):
                return " ".join(message.split())[:300]
        seen.add(id(current))
        current = current.__cause__
    return None


def never() -> bool:
    return False


class Waiter:
    """One loop's waiting for the database: growing pauses, and a log line at most every
    LOG_EVERY_S saying what waits and why."""

    def __init__(self, what: str, stop: Callable[[], bool] = never) -> None:
        self.what = what
        self.stop = stop
        self.failures = 0
        self.since: float | None = None
        self.waits = RateLimitedLog(log, LOG_EVERY_S)

    def wait(self, exc: BaseException) -> None:
        """Pause after the transient error `exc`; raises Stopped if asked to stop meanwhile."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        self.failures += 1
        # Class and first line only: transient errors are about the connection, and the
        # rest of a server message could quote row values.
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        self.waits.warning(
            self.what,
            "%s waits for the database (retrying for %.0f s): %s: %s",
            self.what, now - self.since, type(exc).__name__, first_line,
        )
        deadline = now + backoff(self.failures, base=FIRST_DELAY_S / 2, cap=MAX_DELAY_S)
        while (left := deadline - time.monotonic()) > 0:
            if self.stop():
                raise Stopped(self.what)
            time.sleep(min(left, 0.1))
        if self.stop():
            raise Stopped(self.what)

    def recovered(self) -> None:
        if self.since is not None:
            waited = time.monotonic() - self.since
            log.warning("%s: database back after %.1f s of retrying", self.what, waited)
        self.since, self.failures = None, 0
        self.waits.reset(self.what)


def retry_transient(
    attempt: Callable[[], T], *, what: str, stop: Callable[[], bool] = never
) -> T:
    """`attempt()` again and again while it fails transiently (the whole attempt: a transaction
    that failed was rolled back); any other error is raised at once."""
    waiter = Waiter(what, stop)
    while True:
        try:
            result = attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            waiter.wait(exc)
            continue
        waiter.recovered()
        return result
