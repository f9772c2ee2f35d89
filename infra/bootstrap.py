"""The composition root: builds the application, relay, checkout consumer and projector from
ONE Settings (every GIFTCARDS_* variable), so no other module reads the environment."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import psycopg
from eventsourcing.utils import get_topic

from application.cards import GiftCards
from domain.codes import generate_code
from domain.markets import Markets
from infra import lease
from infra.chainkey import load_chain_key
from infra.config import ConfigError, Settings, load_settings
from infra.db import Database, eventsourcing_env
from infra.dbclock import DatabaseClock
from infra.envelope import use_pseudonyms
from infra.kafka import floor
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

if TYPE_CHECKING:  # built on demand: a card command does not load Kafka or view code
    from consumers.checkout import CheckoutConsumer
    from consumers.delivery import DeliveryWorker
    from infra.cardfacts import CardFactsReader
    from infra.kafka.relay import Relay
    from infra.kafka.topics import Topics
    from infra.mail.transport import Transport
    from projections.runner import Projector


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
            check_replication(db, settings.database_replication)
        except BaseException:
            db.close()
            raise
    keks = KekRing(settings.kek_file, sealing_key=keys.key_wrapping)
    vault = Vault(db, wrapping_key=keys.key_wrapping, subject_key=keys.subject_hmac, keks=keks)
    env = {
        **eventsourcing_env(settings.database_url, settings.db_pool_size),
        "CREATE_TABLE": "y" if create_tables else "n",
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
    }
    markets = load_markets(settings)
    shared = database_clock(settings, db) if clock is None and settings.now is None else None
    app = GiftCards(
        env,
        clock=clock or shared or clock_for(settings),
        codes=codes,
        hasher=HmacCodeHasher(keys.code_hmac),
        vault=vault,
        markets=markets,
    )
    key = chain_key(settings)
    cast(PydanticMapper, app.mapper).chain_key = key
    if isinstance(app.recorder, BinaryPostgresProcessRecorder):
        app.recorder.facts_key = key
    app.load_streams = stream_loader(app.recorder, app.mapper, db)
    app.keeps_card_facts = isinstance(app.recorder, BinaryPostgresProcessRecorder)
    # The same recorder commits the keys a unit of work creates with its events.
    vault.keys_with_events = app.keeps_card_facts
    if create_tables:
        db.execute(lease.TABLE)
        db.execute(floor.TABLE)
    pseudonyms = StreamPseudonyms(keys.stream_pseudonym)
    use_pseudonyms(pseudonyms)  # every envelope this process builds (relay, views, verify)
    return Service(settings=settings, app=app, db=db, vault=vault, pseudonyms=pseudonyms,
                   clock=shared)


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


def build_card_facts_reader(service: Service) -> CardFactsReader | None:
    """The API's lookups in one round trip from its event loop, where the recorder keeps the
    cards' lookup rows (PostgreSQL); None elsewhere: every lookup then runs in full."""
    recorder = service.app.recorder
    if not isinstance(recorder, BinaryPostgresProcessRecorder):
        return None
    from infra.cardfacts import CardFactsReader

    return CardFactsReader(service.settings.database_url, recorder)


def load_markets(settings: Settings) -> Markets:
    return Markets.load(settings.markets_file) if settings.markets_file else Markets.load()


def build_projector(settings: Settings) -> Projector:
    """The views in GIFTCARDS_VIEWS_URL with the fraud thresholds and the process's markets."""
    from projections import handlers
    from projections.config import read_fraud_config
    from projections.runner import Projector

    handlers.use_markets(load_markets(settings))
    views = Database(settings.views_url, settings.db_pool_size)
    return Projector(views, read_fraud_config(settings.fraud_config))


def build_relay(service: Service, topics: Topics, batch_size: int | None = None) -> Relay:
    from infra.kafka.relay import BATCH_SIZE, Relay

    return Relay(
        service,
        service.settings.kafka_link,
        topics,
        transactional_id=topics.relay_transactional_id,
        batch_size=batch_size or BATCH_SIZE,
    )


def build_checkout_consumer(
    service: Service, topics: Topics, *, instance_id: str | None, max_poll_records: int
) -> CheckoutConsumer:
    from consumers.checkout import CheckoutConsumer
    from infra.kafka.cloudevents import CloudEvents

    return CheckoutConsumer(
        service.app,
        service.settings.kafka_link,
        topics,
        instance_id=instance_id,
        max_poll_records=max_poll_records,
        cloudevents=CloudEvents.of(service.settings),
    )


def build_delivery_worker(service: Service, transport: Transport | None = None) -> DeliveryWorker:
    """The code e-mails' worker over `transport`, by default GIFTCARDS_SMTP_URL's server or
    the data dir's maildir."""
    from application.privacy import Privacy
    from consumers.delivery import DeliveryWorker
    from infra.mail.transport import transport_for

    Privacy(service)  # the access log's table, where the worker records what it unseals
    settings = service.settings
    return DeliveryWorker(
        service,
        transport
        or transport_for(settings.smtp_url, settings.data_dir, service.vault,
                         settings.smtp_ca_file),
    )


def check_mail_link(settings: Settings) -> None:
    """Raises ConfigError (the setting named) if the mail server refuses the link at start."""
    from infra.mail.transport import SmtpTransport

    if settings.smtp_url:
        SmtpTransport(settings.smtp_url, settings.smtp_ca_file).check()


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
    from application.privacy import Privacy

    with schema_lock(settings.database_url):
        service = build(settings)
        try:
            if service.clock is not None:  # long-running processes refuse a skewed host
                service.clock.check()
            Privacy(service)  # the access log, which the delivery worker writes to
        finally:
            service.close()
        for step in more:
            step()


__all__ = [
    "Service",
    "build",
    "build_checkout_consumer",
    "build_delivery_worker",
    "build_projector",
    "build_relay",
    "set_up_schema",
]
