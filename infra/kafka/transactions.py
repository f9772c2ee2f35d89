"""Kafka transactions bounded in time: commit and abort with a timeout, a close that never fails."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer
from kafka.errors import InvalidProducerEpochError, KafkaTimeoutError, ProducerFencedError

from infra.kafka import clients
from infra.kafka.clients import Link

log = logging.getLogger("giftcards.relay")
# Also the benchmark's raw-producer baseline. Record batches of 256 KiB instead of kafka-python's
# 16 KiB default: a relay batch is a burst of thousands of ~600 B records (+20% measured).
PRODUCER_SETTINGS: dict[str, Any] = {
    "enable_idempotence": True,
    "acks": "all",
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "max_in_flight_requests_per_connection": 5,
}
# Bounds on every blocking step, so that a dead broker turns into an error the loop handles
# (kafka-python's commit_transaction and abort_transaction wait forever on their own).
MAX_BLOCK_MS = 10_000
COMMIT_TIMEOUT_MS = 30_000
ABORT_TIMEOUT_MS = 5_000  # best effort only: the next init_transactions aborts it anyway
CLOSE_TIMEOUT_S = 2.0
FENCED = (ProducerFencedError, InvalidProducerEpochError)


def transactional_producer(
    link: Link, transactional_id: str, **settings: Any
) -> KafkaProducer:
    """The one way a transactional producer is made (the relay's, the checkout consumer's):
    PRODUCER_SETTINGS, every blocking step bounded, and the transactional id's predecessor
    fenced (its open transaction aborted) before it is returned; discarded if that fails."""
    producer = clients.producer(
        link,
        transactional_id=transactional_id,
        max_block_ms=MAX_BLOCK_MS,
        bootstrap_timeout_ms=MAX_BLOCK_MS,
        **{**PRODUCER_SETTINGS, **settings},
    )
    try:
        producer.init_transactions()
    except BaseException:
        discard(producer)
        raise
    return producer


def discard(producer: KafkaProducer) -> None:
    """Close a producer without raising. kafka-python's close() raises from its flush when
    records are still pending (broker away), and then leaves its sender thread running and
    raises again from __del__: its sender is then force-closed here (pending records aborted,
    network client closed) and the producer marked closed."""
    try:
        producer.close(timeout=CLOSE_TIMEOUT_S)
        return
    except Exception as exc:
        log.debug("producer close did not complete (%s): forcing it", exc)
    try:
        producer._sender.force_close()
        producer._sender.join(CLOSE_TIMEOUT_S)
    except Exception as exc:
        log.debug("producer force-close did not complete: %s", exc)
    producer._closed = True


def end_transaction(
    producer: KafkaProducer, *, commit: bool, timeout_ms: int | None = None
) -> None:
    """commit_transaction / abort_transaction with a timeout: kafka-python's public calls wait
    for the broker's answer without one. A timed-out commit has an unknown outcome; the
    caller's next init_transactions settles it."""
    manager = producer._transaction_manager
    result = manager.begin_commit() if commit else manager.begin_abort()
    producer._sender.wakeup()
    timeout_ms = timeout_ms or (COMMIT_TIMEOUT_MS if commit else ABORT_TIMEOUT_MS)
    if not result.wait(timeout_ms=timeout_ms):
        what = "commit" if commit else "abort"
        raise KafkaTimeoutError(f"transaction {what} not answered in {timeout_ms} ms")
