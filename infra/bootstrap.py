"""The store and the application assembled from ONE Settings (every GIFTCARDS_* variable): the
adapters' part of the composition root (`composition/bootstrap.py` builds the rest on it)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import Mapper, ProcessRecorder
from eventsourcing.utils import get_topic

from application.cards import GiftCards
from application.privacy_scan import seed_store_ids
from domain.codes import generate_code
from domain.markets import Markets
from infra import lease
from infra.chainkey import load_chain_key
from infra.config import ConfigError, Settings, load_settings
from infra.db import Database, eventsourcing_env, keys_commit_with_events
from infra.dbclock import DatabaseClock
from infra.kafka import floor, links
from infra.keyring import KekRing
from infra.lookup import stream_loader
from infra.orjsonpydantic import OrjsonTranscoder, PydanticMapper
from infra.pseudonyms import StreamPseudonyms
from infra.recorders import BinaryPostgresProcessRecorder
from infra.replication import check_replication
from infra.secrets import HmacCodeHasher, Keys
from infra.service import Service
from infra.transient import is_transient
from infra.vault import Vault
from infra.wire import replies as _replies  # noqa: F401  registers the stored name of checkout replies


class StoredGiftCards(GiftCards):
    """The application over this store, its parts made as the library makes them
    (`construct_*`): the mapper seals each event's chain link with the chain key, a PostgreSQL
    recorder MACs each card's lookup row with it, and a card's streams load in one query."""

    name = GiftCards.name  # the stored application name, whatever the class

    def __init__(self, env: dict[str, str], *, chain_key: bytes, db: Database,
                 **parts: Any) -> None:
        self._chain_key = chain_key
        super().__init__(env, **parts)
        self.load_streams = stream_loader(self.recorder, self.mapper, db)
        self.keeps_card_facts = isinstance(self.recorder, BinaryPostgresProcessRecorder)

    def construct_mapper(self) -> Mapper[UUID]:
        mapper = super().construct_mapper()
        cast(PydanticMapper, mapper).chain_key = self._chain_key
        return mapper

    def construct_recorder(self) -> ProcessRecorder:
        recorder = super().construct_recorder()
        if isinstance(recorder, BinaryPostgresProcessRecorder):
            recorder.facts_key = self._chain_key
        return recorder


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
    db = Database(
        settings.database_url if settings.database_url != "memory://" else "sqlite:///:memory:",
        settings.db_pool_size,
    )
    if settings.production:
        # Before anything is written: a refused start leaves nothing behind.
        try:
            check_replication(db, settings.database_replication, settings.database_url)
        except BaseException:
            db.close()
            raise
    keks = KekRing(settings.kek_file, sealing_key=keys.key_wrapping)
    vault = Vault(db, wrapping_key=keys.key_wrapping, subject_key=keys.subject_hmac, keks=keks,
                  keys_with_events=keys_commit_with_events(settings.database_url))
    env = {
        **eventsourcing_env(settings.database_url, settings.db_pool_size),
        "CREATE_TABLE": "y" if create_tables else "n",
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
    }
    markets = load_markets(settings)
    shared = database_clock(settings, db) if clock is None and settings.now is None else None
    pseudonyms = StreamPseudonyms(keys.stream_pseudonym)
    app = StoredGiftCards(
        env,
        chain_key=chain_key(settings),
        db=db,
        clock=clock or shared or clock_for(settings),
        codes=codes,
        hasher=HmacCodeHasher(keys.code_hmac),
        vault=vault,
        markets=markets,
        pseudonyms=pseudonyms,
    )
    if create_tables:
        db.execute(lease.TABLE)
        db.execute(floor.TABLE)
        db.execute(links.TABLE)
    service = Service(settings=settings, app=app, db=db, vault=vault, pseudonyms=pseudonyms,
                      clock=shared)
    if create_tables:
        seed_store_ids(service)
    return service


def database_clock(settings: Settings, db: Database) -> DatabaseClock:
    """The database's clock, its offset measured now (or at first use if the database is away)."""
    shared = DatabaseClock(db, settings.max_clock_skew_seconds)
    try:
        shared.measure()
    except Exception as exc:
        if not is_transient(exc):
            raise
    return shared


def chain_key(settings: Settings) -> bytes:
    """The key sealing chain links (`GIFTCARDS_CHAIN_KEY_FILE`, generated outside production);
    a memory store's lives as long as the process."""
    if settings.chain_key_file is None:
        return secrets.token_bytes(32)
    try:
        return load_chain_key(settings.chain_key_file, create=not settings.production)
    except (OSError, ValueError) as error:
        raise ConfigError(f"GIFTCARDS_CHAIN_KEY_FILE: {error}") from None


def load_markets(settings: Settings) -> Markets:
    return Markets.load(settings.markets_file) if settings.markets_file else Markets.load()


__all__ = ["Service", "build", "load_markets"]
