"""The composition root: wires settings, storage, secrets and the vault into the application."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from eventsourcing.utils import get_topic

from domain.application import GiftCards
from domain.codes import generate_code
from domain.markets import Markets
from infra import lease
from infra.config import Settings, load_settings
from infra.db import Database, eventsourcing_env
from infra.lookup import stream_loader
from infra.orjsonpydantic import OrjsonTranscoder, PydanticMapper
from infra.secrets import HmacCodeHasher, Keys
from infra.vault import Vault


@dataclass
class Service:
    """Everything a process needs, built once."""

    settings: Settings
    app: GiftCards
    db: Database
    vault: Vault

    def close(self) -> None:
        self.app.close()
        self.db.close()


def clock_for(settings: Settings) -> Callable[[], datetime]:
    pinned = settings.now
    if pinned is not None:
        return lambda: pinned
    return lambda: datetime.now(UTC)


def build(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    codes: Callable[[], str] = generate_code,
    create_tables: bool = True,
) -> Service:
    """`create_tables=False` for a process's parts once `set_up_schema` ran: concurrent
    first-time schema creation races (see `set_up_schema`)."""
    settings = settings or load_settings()
    keys = Keys.from_master(settings.master_key)
    db = Database(settings.database_url) if settings.database_url != "memory://" else Database(
        "sqlite:///:memory:"
    )
    vault = Vault(db, wrapping_key=keys.key_wrapping, subject_key=keys.subject_hmac)
    env = {
        **eventsourcing_env(settings.database_url),
        "CREATE_TABLE": "y" if create_tables else "n",
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
    }
    markets = Markets.load(settings.markets_file) if settings.markets_file else Markets.load()
    app = GiftCards(
        env,
        clock=clock or clock_for(settings),
        codes=codes,
        hasher=HmacCodeHasher(keys.code_hmac),
        vault=vault,
        markets=markets,
    )
    app.load_streams = stream_loader(app.recorder, app.mapper)
    if create_tables:
        db.execute(lease.TABLE)
    return Service(settings=settings, app=app, db=db, vault=vault)


# pg_advisory_lock key of the whole set-up ("giftsetp"): NOT the recorder's own schema lock
# (infra.recorders.SCHEMA_LOCK), which build() takes inside this one from another connection.
SETUP_LOCK = 0x6769667473657470


@contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """On PostgreSQL, holds a session advisory lock for schema creation; nothing on SQLite
    (its writers are serialised by the file lock already)."""
    if not url.startswith(("postgresql://", "postgres://")):
        yield
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


def set_up_schema(settings: Settings, *more: Callable[[], None]) -> None:
    """Creates the store's tables (and `more`, e.g. the views) once, under the set-up lock:
    concurrent CREATE TABLE IF NOT EXISTS (vault, leases, views) fails with a unique violation,
    and the library's CREATE OR REPLACE FUNCTION with "tuple concurrently updated", when
    processes start at once on one fresh PostgreSQL database."""
    with schema_lock(settings.database_url):
        build(settings).close()
        for step in more:
            step()
