"""Test plumbing for the checkout consumer on the real broker: topics, a consumer thread, reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource

from composition.bootstrap import Service, build, build_delivery_worker
from consumers.checkout import CheckoutConsumer
from infra.config import load_settings
from infra.kafka.admin import ensure_topics
from infra.kafka.topics import Topics
from infra.mail.transport import SmtpTransport
from tests.mail.inbox import SmtpServer

PARTITIONS = 2


def create_topics(
    bootstrap: str, topics: Topics, partitions: int = PARTITIONS, replication_factor: int = 1
) -> None:
    """The contract's topics; the input one also accepts 1 MB values (to refuse them)."""
    ensure_topics(bootstrap, topics, partitions, replication_factor)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        # alter_configs replaces the topic's settings: the contract's are given again with it.
        big = {**topics.configs()[topics.checkout], "max.message.bytes": "2097152"}
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.alter_configs([ConfigResource("TOPIC", topics.checkout, configs=big)])
                return
            except ValueError:
                # kafka-python checks the names against the topic's described configs, which a
                # broker that has just started may not serve yet for a topic just created.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        admin.close()


@contextmanager
def running_consumer(
    env: dict[str, str],
    clock: Callable[[], datetime],
    bootstrap: str,
    topics: Topics,
    smtp: SmtpServer | None = None,
) -> Iterator[None]:
    """The consumer in a thread with its own Service on the test's store, as in `serve`; with
    `smtp`, the delivery worker too, e-mailing the codes to that real SMTP server."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def consume(service: Service) -> None:
        CheckoutConsumer(service.app, bootstrap, topics, max_poll_records=50).run(stop)

    def deliver(service: Service) -> None:
        assert smtp is not None
        build_delivery_worker(service, SmtpTransport(smtp.url)).run(stop, idle_s=0.1)

    def run(part: Callable[[Service], None]) -> None:
        service = build(load_settings(env), clock=clock)
        try:
            part(service)
        except BaseException as exc:  # surfaced in the test thread below
            failure.append(exc)
        finally:
            service.close()

    parts = [consume] if smtp is None else [consume, deliver]
    threads = [threading.Thread(target=run, args=(part,), daemon=True) for part in parts]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not failure, failure


def produce(bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    # acks=all: on a replicated cluster a message acknowledged by a leader killed next is kept.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=2 * 1024 * 1024, acks="all"
    )
    for value in values:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


class TopicReader:
    """Reads a topic from the start with read_committed, accumulating across calls."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
        )
        parts = self.consumer.partitions_for_topic(topic) or set()
        self.consumer.assign([TopicPartition(topic, p) for p in parts])
        self.consumer.seek_to_beginning()
        self.raw: list[bytes] = []
        self.keys: list[bytes | None] = []
        self.headers: list[list[tuple[str, bytes]]] = []

    def poll(self, timeout_ms: int = 200) -> None:
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            self.raw += [r.value for r in records]
            self.keys += [r.key for r in records]
            self.headers += [r.headers for r in records]

    def until(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.raw) < count and time.monotonic() < deadline:
            self.poll()
        assert len(self.raw) >= count, f"got {len(self.raw)} of {count} messages"
        return [orjson.loads(v) for v in self.raw]

    def close(self) -> None:
        self.consumer.close()
