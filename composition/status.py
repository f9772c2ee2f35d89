"""The operators' view of a deployment: relay lag, consumer lag per partition, dead letters,
deliveries pending, the active relay and checkpoint signer, read from the store, the views and
Kafka."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from consumers import delivery
from infra.checkpoint_signer import signing_instance
from infra.kafka import clients
from infra.kafka.floor import stopped_relays
from infra.kafka.links import refused_links
from infra.lease import current_holder
from infra.service import Service

Json = dict[str, Any]
LAG_COUNT_LIMIT = 10_000  # relay lag counted exactly up to here: a status call stays cheap


def status(service: Service, projections_source: Callable[[], dict[int, int]] | None) -> Json:
    """One snapshot. `projections_source`: the views' stored offsets of `giftcard.events` per
    partition (None when the views do not follow Kafka)."""
    from infra.envelope import published_topics
    from infra.kafka.positions import committed_position
    from infra.kafka.topics import Topics

    settings = service.settings
    bootstrap = settings.kafka_link
    topics = Topics(settings.topic_prefix)
    published = committed_position(bootstrap, topics, topics.relay_transactional_id)
    # Only published events count: private ones (indexes, replies) are never relayed.
    waiting = service.app.recorder.select_notifications(
        published + 1, LAG_COUNT_LIMIT, topics=published_topics()
    )
    stored = waiting[-1].id if waiting else published
    holder = current_holder(service.db, topics.relay_transactional_id)
    stopped = stopped_relays(service.db).get(topics.relay_transactional_id)
    now = time.time()
    kc = clients.consumer(bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    try:
        checkout = _lag(kc, topics.checkout, lambda p: _checkout_next(service, topics, p))
        views = None
        if projections_source is not None:
            seen = projections_source()
            views = _lag(kc, topics.events, lambda p: seen[p] + 1 if p in seen else 0)
        dead = _count(kc, topics.dead_letters)
    finally:
        kc.close()
    return {
        "relay": {
            "last_stored_position": stored,
            "last_published_position": published,
            "lag": len(waiting),  # events stored, not yet published (counted up to the limit)
            "lag_at_least": len(waiting) == LAG_COUNT_LIMIT,
            "active_instance": holder.holder if holder and holder.expires_at >= now else None,
            "lease_expires_in_s": round(holder.expires_at - now, 1) if holder else None,
            # The alert: Kafka's position read below the confirmed one; the relay stopped.
            "stopped": {"confirmed_position": stopped[0], "kafka_position": stopped[1]}
            if stopped else None,
            # The alert: a card event whose chain link the chain key did not seal (forged).
            "refused_link": refused_links(service.db).get(topics.relay_transactional_id),
        },
        # The `serve` instance that signs checkpoints now (the others stand by).
        "checkpoints": {"signing_instance": signing_instance(service.db)},
        "consumers": {"checkout": checkout, "projections": views},
        "dead_letters": dead,
        "clock": _clock(service),
        "deliveries_pending": delivery.pending(service.app, LAG_COUNT_LIMIT),
    }


def _clock(service: Service) -> Json | None:
    """This host's clock against the database's (measured now), and the bound past which it
    refuses leases and events."""
    if service.clock is None:
        return None
    offset = service.clock.measure()
    bound = service.clock.bound_s
    return {"offset_s": round(-offset, 3), "bound_s": bound, "within_bound": abs(offset) <= bound}


def _checkout_next(service: Service, topics: Any, partition: int) -> int:
    """The first checkout offset not yet applied: the store's tracking record is the truth."""
    from consumers.checkout_processor import CheckoutProcessor

    return CheckoutProcessor(service.app, topics.checkout).next_offset(partition) or 0


def _partitions(kc: KafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(kc.partitions_for_topic(topic) or ())]


def _lag(kc: KafkaConsumer, topic: str, next_offset: Callable[[int], int]) -> Json:
    """Per partition: the end (last stable offset), the next offset to handle and the lag. On
    a transactional topic (`giftcard.events`) the commit marker after the last record takes an
    offset too, so a partition that is caught up shows a lag of 1."""
    parts = _partitions(kc, topic)
    ends = kc.end_offsets(parts) if parts else {}
    rows = []
    for tp in parts:
        done = next_offset(tp.partition)
        rows.append({"partition": tp.partition, "end": ends[tp], "next": done,
                     "lag": max(0, ends[tp] - done)})
    return {"topic": topic, "lag": sum(r["lag"] for r in rows), "partitions": rows}


def _count(kc: KafkaConsumer, topic: str) -> int:
    """Records on `topic` (every dead letter is kept: the topic never expires)."""
    parts = _partitions(kc, topic)
    if not parts:
        return 0
    ends, starts = kc.end_offsets(parts), kc.beginning_offsets(parts)
    return sum(ends[tp] - starts[tp] for tp in parts)
