"""Where envelopes come from: the event store (embedded default) or the Kafka events topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from application.cards import GiftCards
from infra.config import PROJECTION_BATCH
from infra.envelope import published_topics, stored_envelope
from infra.kafka.clients import Link
from infra.transient import Stopped, never, retry_transient
from projections import handlers
from projections.readahead import ReadAhead
from projections.runner import STORE, Item, Projector
from projections.topicreader import consumer, seek_after, topic_records

log = logging.getLogger("giftcards.projections")
Progress = Callable[[int, int], None]  # (messages in this batch, envelopes applied)


def store_total(app: GiftCards) -> int:
    return int(app.recorder.max_notification_id() or 0)


def store_page(app: GiftCards, start: int, limit: int) -> list[Item]:
    items = []
    last = int(app.recorder.max_notification_id() or 0)
    # Only published events feed the views, exactly as on Kafka: private ones are not even read.
    notifications = app.recorder.select_notifications(
        start, limit, stop=last, topics=published_topics()
    )
    for notification in notifications:
        try:
            envelope = stored_envelope(app.mapper, notification, app.pseudonyms)
        except Exception as exc:  # one unreadable record must not stop the views
            reason = f"undecodable: {type(exc).__name__}"
            items.append(Item(STORE, 0, notification.id, None, reason))
            continue
        items.append(Item(STORE, 0, notification.id, envelope))
    if len(notifications) < limit and last >= start:
        # Everything up to `last` was read: a position-only item moves the views past the
        # private events after the last published one, so "caught up" means position == last.
        items.append(Item(STORE, 0, last, None))
    return items


def store_pages(app: GiftCards, start: int, batch_size: int) -> Iterator[list[Item]]:
    """The store's pages from `start` on, up to its end as it is when each page is read."""
    while page := store_page(app, start, batch_size):
        yield page
        start = page[-1].pos + 1


def sync_store(
    app: GiftCards,
    projector: Projector,
    *,
    batch_size: int = PROJECTION_BATCH,
    progress: Progress | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Apply everything stored after the views' position; returns envelopes applied. The
    next page is read while this one is applied (docs/operations.md: +10-15% events/s)."""
    applied = 0
    start = projector.positions(STORE).get(0, 0) + 1
    with ReadAhead(store_pages(app, start, batch_size), "store-read-ahead") as pages:
        for page in pages:
            if stop():
                break
            done = projector.apply(page)
            applied += done
            if progress:  # in stored records covered, the unit of store_total()
                progress(page[-1].pos + 1 - start, done)
            start = page[-1].pos + 1
    return applied


def _decoded(topic: str, part: int, pos: int, value: bytes | None) -> Item:
    try:
        # A record without a value (None) is refused by orjson as not JSON, like any other.
        envelope = handlers.check(orjson.loads(value))  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return Item(topic, part, pos, None, "value is not JSON")
    except handlers.Rejected as exc:
        return Item(topic, part, pos, None, str(exc))
    return Item(topic, part, pos, envelope)


def _polled(kc: KafkaConsumer, topic: str) -> list[Item]:
    return [_decoded(topic, r.partition, r.offset, r.value)
            for batch in kc.poll(timeout_ms=500).values() for r in batch]


def _apply(
    items: list[Item],
    projector: Projector,
    progress: Progress | None,
    stop: Callable[[], bool] = never,
) -> int:
    # While the views database is away the batch in hand waits: the consumer's position has
    # moved past it, so it must not be dropped (apply skips whatever a lost COMMIT did store).
    done = retry_transient(lambda: projector.apply(items), what="projections", stop=stop)
    if progress and items:
        progress(len(items), done)
    return done


def kafka_total(bootstrap: Link, topic: str, projector: Projector) -> int:
    """Messages between the views' positions and the end of the topic."""
    kc = consumer(bootstrap, None)
    try:
        parts = [TopicPartition(topic, p) for p in kc.partitions_for_topic(topic) or ()]
        if not parts:
            return 0
        ends = kc.end_offsets(parts)
        begins = kc.beginning_offsets(parts)
        seen = projector.positions(topic)
        return sum(
            max(0, ends[tp] - max(begins[tp], seen.get(tp.partition, -1) + 1)) for tp in parts
        )
    finally:
        kc.close()


def sync_kafka(
    bootstrap: Link,
    topic: str,
    projector: Projector,
    *,
    progress: Progress | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Catch up with the topic as it is now (every partition, no group): rebuilds and queries."""
    applied = 0
    with closing(topic_records(bootstrap, topic, projector.positions(topic))) as polls:
        for records in polls:
            if stop():
                break
            items = [_decoded(topic, part, pos, value) for part, pos, value in records]
            applied += _apply(items, projector, progress)
    return applied


class _Resume(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue each partition right after the offset stored with the views."""

    def __init__(
        self, kc: KafkaConsumer, topic: str, projector: Projector, stop: Callable[[], bool]
    ) -> None:
        self.kc, self.topic, self.projector, self.stop = kc, topic, projector, stop

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing to commit: every applied batch already stored its offsets."""

    def on_partitions_assigned(self, assigned: Any) -> None:
        seen = retry_transient(
            lambda: self.projector.positions(self.topic), what="projections", stop=self.stop
        )
        seek_after(self.kc, list(assigned), seen)
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


def follow_kafka(
    bootstrap: Link,
    topic: str,
    group_id: str,
    projector: Projector,
    *,
    progress: Progress | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Long-running member of a consumer group: partitions are split across runners. Waits
    out a views database that is away (restarting), then goes on from where it stood."""
    kc = consumer(bootstrap, group_id)
    kc.subscribe([topic], listener=_Resume(kc, topic, projector, stop))
    applied = 0
    try:
        while not stop():
            applied += _apply(_polled(kc, topic), projector, progress, stop)
    except Stopped:
        pass  # asked to stop while the database was away: the views keep their positions
    finally:
        kc.close()
    return applied


def follow_store(
    app: GiftCards,
    projector: Projector,
    *,
    batch_size: int = PROJECTION_BATCH,
    progress: Progress | None = None,
    stop: Callable[[], bool] = lambda: False,
    idle_seconds: float = 0.5,
) -> int:
    """Keeps the views up with the store; waits out either database being away (sync_store
    resumes from the views' stored position, so it is retried whole)."""
    applied = 0
    while not stop():
        try:
            done = retry_transient(
                lambda: sync_store(
                    app, projector, batch_size=batch_size, progress=progress, stop=stop
                ),
                what="projections",
                stop=stop,
            )
        except Stopped:
            break
        applied += done
        if not done:
            time.sleep(idle_seconds)
    return applied
