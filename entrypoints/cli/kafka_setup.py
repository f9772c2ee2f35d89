"""What every long-running command begins with: the Kafka settings, the topic contract checked
(or the topics created) at each start, and the signals that ask its loops to stop."""

from __future__ import annotations

import contextlib
import signal
import threading

from entrypoints.cli.base import UsageError
from infra.config import KafkaLink, Settings, load_settings
from infra.kafka.topics import Topics


def kafka_config() -> tuple[Settings, KafkaLink, Topics]:
    settings = load_settings()
    if not settings.kafka_bootstrap:
        raise UsageError("KAFKA_BOOTSTRAP_SERVERS is not set", code="invalid_configuration")
    topics = Topics.of(settings)
    return settings, settings.kafka_link, topics


def kafka_settings() -> tuple[Settings, KafkaLink, Topics]:
    """Settings, with the contract topics created (the broker must be up)."""
    settings, bootstrap, topics = kafka_config()
    TopicsReady(settings, bootstrap, topics)()
    return settings, bootstrap, topics


class TopicsReady:
    """Creates the contract topics and checks the existing ones; every part calls it at each
    (re)start, so a broker that is down at start fails (and restarts) the parts, not the process,
    and a topic changed while the service ran is found at the next reconnect. No lock: creating
    topics is idempotent, and a part must not wait behind another's attempt."""

    BOOTSTRAP_TIMEOUT_MS = 5_000  # a down broker fails the attempt soon; the supervisor retries

    def __init__(self, settings: Settings, bootstrap: KafkaLink, topics: Topics) -> None:
        self.args = (bootstrap, topics, settings.partitions, settings.replication_factor)

    def __call__(self) -> None:
        from infra.kafka.admin import ensure_topics

        ensure_topics(*self.args, bootstrap_timeout_ms=self.BOOTSTRAP_TIMEOUT_MS)


def check_link(link: KafkaLink) -> None:
    """Raises KafkaLinkError (exit 2, the setting named) if the brokers refuse this link; a
    broker that is down is waited for by the parts instead."""
    from kafka.errors import KafkaError

    from infra.kafka import clients

    with contextlib.suppress(KafkaError):
        clients.admin(link, bootstrap_timeout_ms=TopicsReady.BOOTSTRAP_TIMEOUT_MS).close()


def stop_on_sigterm() -> threading.Event:
    """SIGTERM/SIGINT ask every loop to finish its batch, commit and close."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
