"""Shared fixtures: a fixed clock, the application on every backend, real Kafka and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.bootstrap import Service, build
from infra.config import load_settings

IN_CI = os.environ.get("CI", "").lower() == "true"
SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
BACKENDS = ["sqlite", "postgres"]


class Ticks:
    """A monotonic clock (seconds) that moves only when a test moves `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FixedClock:
    """Time stands still unless a test moves it."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 12, 10, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, instant: str) -> datetime:
        self.now = datetime.fromisoformat(instant.replace("Z", "+00:00"))
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A real PostgreSQL: given by env, a testcontainer, or the dev launcher. Never skipped."""
    from dev.services import postgres_url

    return postgres_url()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A real Kafka broker: given by env, a testcontainer, or the dev launcher. Never skipped."""
    from dev.services import kafka_bootstrap as find_broker

    return find_broker()


def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'giftcards.sqlite3'}"
    from dev.services import drop_postgres_database, fresh_postgres_database

    url = fresh_postgres_database(request.getfixturevalue("postgres_server"))
    request.addfinalizer(lambda: drop_postgres_database(url))
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env_for(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment variables that point a process (CLI, consumer) at this test's store."""
    return {
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_DATABASE_URL": database_url(backend, tmp_path, request),
        "GIFTCARDS_SECRET_KEY": SECRET,
        # Outside the data dir, as in production: a copy of var/ holds no chain key.
        "GIFTCARDS_CHAIN_KEY_FILE": str(tmp_path / "secrets" / "chain.key"),
    }


@pytest.fixture
def service(env_for: dict[str, str], clock: FixedClock) -> Iterator[Service]:
    """The application on this test's backend (SQLite file or a fresh PostgreSQL database)."""
    svc = build(load_settings(env_for), clock=clock)
    yield svc
    svc.close()


@pytest.fixture
def memory_service(clock: FixedClock) -> Iterator[Service]:
    """The application on in-memory storage, for fast unit tests of the rules."""
    env = {"GIFTCARDS_DATABASE_URL": "memory://", "GIFTCARDS_SECRET_KEY": SECRET}
    svc = build(load_settings(env), clock=clock)
    yield svc
    svc.close()
