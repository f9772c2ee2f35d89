"""The composition root (cosmicpython's bootstrap): every part of a process built from ONE
Settings, above the adapters; entry points build through it and nothing below imports it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg

from infra.bootstrap import Service, build, load_markets
from infra.config import Settings
from infra.db import Database
from infra.recorders import BinaryPostgresProcessRecorder

if TYPE_CHECKING:  # built on demand: a card command does not load Kafka or view code
    from consumers.checkout import CheckoutConsumer
    from consumers.delivery import DeliveryWorker
    from infra.cardfacts import CardFactsReader
    from infra.kafka.relay import Relay
    from infra.kafka.topics import Topics
    from infra.mail.transport import Transport
    from projections.runner import Projector


def build_card_facts_reader(service: Service) -> CardFactsReader | None:
    """The API's lookups in one round trip from its event loop, where the recorder keeps the
    cards' lookup rows (PostgreSQL); None elsewhere: every lookup then runs in full."""
    recorder = service.app.recorder
    if not isinstance(recorder, BinaryPostgresProcessRecorder):
        return None
    from infra.cardfacts import CardFactsReader

    return CardFactsReader(service.settings.database_url, recorder)


def build_projector(settings: Settings) -> Projector:
    """The views in GIFTCARDS_VIEWS_URL with the fraud thresholds and the process's markets."""
    from projections.config import read_fraud_config
    from projections.runner import Projector
    from projections.timefmt import TimeZones

    views = Database(settings.views_url, settings.db_pool_size)
    return Projector(views, read_fraud_config(settings.fraud_config),
                     TimeZones(load_markets(settings)))


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
    "build_card_facts_reader",
    "build_checkout_consumer",
    "build_delivery_worker",
    "build_projector",
    "build_relay",
    "check_mail_link",
    "load_markets",
    "set_up_schema",
]
