"""The views' Kafka consumer, and a topic read by a process of its own during a rebuild."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Generator
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from infra.childprocess import ReaderFailed, parent_alive, sendable
from infra.config import PROJECTION_BATCH
from infra.kafka import clients
from infra.kafka.admin import METADATA_MAX_AGE_MS
from infra.kafka.clients import Link

Record = tuple[int, int, bytes | None]  # (partition, offset, value)
# Polls waiting for the views (~4 MB each at most): the reader stays this far ahead, no more.
DEPTH = 2
WAIT_S = 0.2


def consumer(bootstrap: Link, group_id: str | None, **extra: Any) -> KafkaConsumer:
    return clients.consumer(
        bootstrap,
        group_id=group_id,
        enable_auto_commit=False,  # positions live in the views database, with the views
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=PROJECTION_BATCH,
        # Bounded prefetch: memory stays flat however long the topic (rebuilds read it all).
        fetch_max_bytes=8 * 1024 * 1024,
        max_partition_fetch_bytes=1024 * 1024,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        **extra,
    )


def seek_after(kc: KafkaConsumer, parts: list[TopicPartition], seen: dict[int, int]) -> None:
    """Each partition right after the offset the views stored, or from its beginning."""
    for tp in parts:
        if tp.partition in seen:
            kc.seek(tp, seen[tp.partition] + 1)
        else:
            kc.seek_to_beginning(tp)


def topic_records(
    bootstrap: Link, topic: str, seen: dict[int, int]
) -> Generator[list[Record], None, None]:
    """The topic's records after the positions `seen`, up to its end as it is when the read
    starts, a poll at a time. A process of its own reads and parses them (kafka-python's record
    parsing is pure Python: a quarter of a rebuild's time in this one) while the caller applies
    the polls before; an error of the reader is raised here, as it was raised there. Leaving
    early ends the reader."""
    context = multiprocessing.get_context("spawn")  # nothing of this process's state is shared
    out = context.Queue(maxsize=DEPTH)
    reader = context.Process(target=_read, args=(bootstrap, topic, seen, out),
                             name=f"{topic}-reader", daemon=True)
    reader.start()
    try:
        while True:
            try:
                batch = out.get(timeout=WAIT_S)
            except queue.Empty:
                if not reader.is_alive():
                    raise ReaderFailed(f"the reader of {topic} exited with {reader.exitcode}"
                                       ) from None
                continue
            if batch is None:
                return
            if isinstance(batch, BaseException):
                raise batch
            yield batch
    finally:
        reader.kill()  # done or given up: a reader still polling has nothing more to give
        reader.join()
        out.close()


def _read(bootstrap: Link, topic: str, seen: dict[int, int], out: Any) -> None:
    """The reader process: a list of records per poll, then None; or the error that stopped
    it. It stops on its own when its parent is gone (killed, say)."""

    def put(item: object) -> bool:
        while parent_alive():
            try:
                out.put(item, timeout=WAIT_S)
                return True
            except queue.Full:
                continue
        # Polls already handed to the queue's pipe will never be read: exiting must not wait
        # for them to be written.
        out.cancel_join_thread()
        return False

    try:
        kc = consumer(bootstrap, None)
        try:
            parts = [TopicPartition(topic, p) for p in kc.partitions_for_topic(topic) or ()]
            if parts:
                kc.assign(parts)
                ends = kc.end_offsets(parts)
                seek_after(kc, parts, seen)
                while any(kc.position(tp) < ends[tp] for tp in parts):
                    polled = kc.poll(timeout_ms=500)
                    batch = [(r.partition, r.offset, r.value)
                             for records in polled.values() for r in records]
                    if batch and not put(batch):
                        return
        finally:
            kc.close()
        put(None)
    except Exception as exc:  # raised in the parent, as the same error when it can be sent
        put(sendable(exc))
