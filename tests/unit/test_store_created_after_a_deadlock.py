"""A process starting while others write may be a deadlock's victim while it creates the
store's tables (its ALTER TABLE against their insert locks): PostgreSQL rolled it back, so it
creates them again; any other database error is raised."""

from __future__ import annotations

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from infra.recorders import CREATE_ATTEMPTS, CreatedOnceAmongMany


class Deadlock(psycopg.errors.DeadlockDetected):
    """The error psycopg raises for SQLSTATE 40P01 (built without a server)."""

    @property
    def sqlstate(self) -> str:
        return "40P01"


def wrapped(error: psycopg.Error) -> OperationalError:
    """As the event store library raises it: its own error, from psycopg's."""
    try:
        raise OperationalError(str(error)) from error
    except OperationalError as raised:
        return raised


class Creating:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures, self.calls = failures, 0

    def create_table(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


class Recorder(CreatedOnceAmongMany, Creating):
    pass


def test_a_deadlock_victim_creates_the_tables_again() -> None:
    recorder = Recorder([wrapped(Deadlock("deadlock detected")),
                         wrapped(Deadlock("deadlock detected"))])
    recorder.create_table()
    assert recorder.calls == 3


def test_deadlocks_that_persist_are_raised() -> None:
    recorder = Recorder([wrapped(Deadlock("deadlock detected")) for _ in range(CREATE_ATTEMPTS)])
    with pytest.raises(OperationalError, match="deadlock"):
        recorder.create_table()
    assert recorder.calls == CREATE_ATTEMPTS


def test_another_database_error_is_raised_at_once() -> None:
    recorder = Recorder([wrapped(psycopg.OperationalError("connection refused"))])
    with pytest.raises(OperationalError, match="refused"):
        recorder.create_table()
    assert recorder.calls == 1
