"""The relay's batches: the stored events after its position, in order, each card event's link
checked and each envelope built into its record; read in a process of their own while the
relay publishes the batch before."""

from __future__ import annotations

import copy
import multiprocessing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from kafka.partitioner.default import murmur2

from infra.childprocess import ReaderFailed, sendable
from infra.config import Settings
from infra.envelope import published_topics, stored_envelope
from infra.kafka.cloudevents import DEFAULT, CloudEvents
from infra.kafka.links import LinkChecker
from infra.limits import ProcessingLimits
from infra.orjsonpydantic import PydanticMapper
from infra.service import Service

Record = tuple[bytes, bytes, list[tuple[str, bytes]], int]  # key, value, headers, partition
WAIT_S = 1.0


@dataclass(frozen=True)
class Batch:
    records: list[Record]
    first: int  # notification ids
    last: int
    full: bool  # as many stored events read as a batch holds: more may follow at once
    held_back: bool  # stopped short of a forged link (the next batch stops there)
    sealed_seen: bool  # a sealed link seen so far: an unsealed one after it is a forgery


class BatchReader:
    """Reads the store after `position`, in order: one reader per run of a relay from the
    position Kafka committed, so its state (the links seen, who is restricted) is that of the
    events before its next batch."""

    def __init__(self, service: Service, cloudevents: CloudEvents, position: int,
                 batch_size: int, partitions: list[int], sealed_seen: bool) -> None:
        self.app, self.cloudevents = service.app, cloudevents
        self.position, self.batch_size, self.partitions = position, batch_size, partitions
        self.links = LinkChecker(self.app.recorder, self.app.mapper)
        self.links.sealed_seen = sealed_seen
        self.limits = ProcessingLimits.from_store(self.app, position)

    def read(self) -> Batch | None:
        """The next batch (raises ForgedLinkError at a forged first link), or None when
        nothing is stored after the position."""
        app = self.app
        # Private events (indexes, replies) are never published: the store filters them out.
        notifications = app.recorder.select_notifications(
            self.position + 1, self.batch_size, topics=published_topics())
        if not notifications:
            return None
        # Each stored event decoded once, for its link's check and for its envelope. Published
        # up to a forged link, never past it (the next batch then stops there).
        mapper = app.mapper
        assert isinstance(mapper, PydanticMapper)  # the composition root installs it
        decoded = self.links.sealed_prefix([(n, mapper.to_state(n)) for n in notifications])
        # Every record is built before the first is sent. Sent in a tight loop they fill the
        # producer's batches as a raw producer's do; built between sends, the sender thread
        # drained each partition's batch with a record or two in it, and was woken per batch.
        records = []
        for notification, state in decoded:
            envelope = stored_envelope(mapper, notification, app.pseudonyms, state)
            assert envelope is not None  # the topic filter admits published events only
            key, value, headers = record_of(self.limits.see(envelope), self.cloudevents)
            records.append((key, value, headers,
                            self.partitions[key_hash(key) % len(self.partitions)]))
        self.position = decoded[-1][0].id
        return Batch(records, decoded[0][0].id, self.position,
                     full=len(notifications) == self.batch_size,
                     held_back=self.links.held_back, sealed_seen=self.links.sealed_seen)

    def mark(self) -> tuple[int, dict[str, list[list[Any]]], bool]:
        """Where it stands: `rewind` to it reads the same batch again."""
        return self.position, copy.deepcopy(self.limits.periods), self.links.sealed_seen

    def rewind(self, mark: tuple[int, dict[str, list[list[Any]]], bool]) -> None:
        self.position, self.limits.periods, self.links.sealed_seen = mark

    def close(self) -> None:
        """Nothing to release: the service is the relay's."""


class BatchProcess:
    """A BatchReader in a process of its own, which reads the next batch while the relay
    publishes the one before whenever that one was full (a backlog): the store's decoding and
    the envelopes' building run beside the producer, on another core. A batch that ends short
    is answered by a fresh read at the next request, as an inline read would be."""

    def __init__(self, settings: Settings, cloudevents: CloudEvents, position: int,
                 batch_size: int, partitions: list[int], sealed_seen: bool) -> None:
        context = multiprocessing.get_context("spawn")  # nothing of this process's state shared
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, name="giftcards-relay-reader", daemon=True,
            args=(child, settings, cloudevents, position, batch_size, partitions, sealed_seen))
        self._process.start()
        child.close()
        self._answer()  # started: its service built, the processing limits read

    def _answer(self) -> Any:
        try:
            while not self._conn.poll(WAIT_S):
                if not self._process.is_alive():
                    raise ReaderFailed(
                        f"the relay's reader exited with {self._process.exitcode}")
            return self._conn.recv()
        except (EOFError, OSError) as exc:  # its end of the pipe closed: it exited
            raise ReaderFailed(f"the relay's reader exited: {exc!r}") from None

    def read(self) -> Batch | None:
        """The next batch, as BatchReader.read gives it; its errors raised here as there."""
        try:
            self._conn.send(None)
        except OSError as exc:
            raise ReaderFailed(f"the relay's reader exited: {exc!r}") from None
        answer = self._answer()
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        """Ends the reader: a batch it read ahead is read again by the next one."""
        self._process.kill()
        self._process.join()
        self._conn.close()


def _serve(conn: Any, settings: Settings, cloudevents: CloudEvents, position: int,
           batch_size: int, partitions: list[int], sealed_seen: bool) -> None:
    """The reader process: a batch (or None, or the error met) per request; the first, and
    after a full one the next, read ahead. Ends with its relay (the pipe's end closed)."""
    from infra.bootstrap import build  # the relay's own process built its service so too

    service: Service | None = None
    reader: BatchReader | None = None
    failure: BaseException | None = None
    try:
        service = build(settings, create_tables=False)
        reader = BatchReader(service, cloudevents, position, batch_size, partitions,
                             sealed_seen)
    except Exception as exc:  # the answer to every request
        failure = sendable(exc)

    def next_batch() -> Batch | BaseException | None:
        if reader is None:
            return failure
        try:
            return reader.read()
        except Exception as exc:  # raised in the relay, as the same error when it can be sent
            return sendable(exc)

    ahead: list[Batch | BaseException | None] = []  # the batch read ahead, if any
    try:
        conn.send("started")
        if reader is not None:
            # The first batch read at once (a relay connects, then publishes). Kept only if
            # full: a short one may be older than the first request, which must see the store
            # as it is then.
            mark = reader.mark()
            first = next_batch()
            if (isinstance(first, Batch) and first.full) or isinstance(first, BaseException):
                ahead.append(first)
            else:
                reader.rewind(mark)
        while True:
            conn.recv()  # EOFError once the relay's end is closed: closed, or killed
            batch = ahead.pop() if ahead else next_batch()
            conn.send(batch)
            full = isinstance(batch, Batch) and batch.full
            del batch  # sent: not held while the next is read
            if full:
                ahead.append(next_batch())
    except (EOFError, OSError):
        return  # the relay closed its end
    finally:
        if service is not None:
            service.close()


@lru_cache(maxsize=65_536)
def key_hash(key: bytes) -> int:
    """Kafka's default partitioner hash (Java-compatible murmur2, made positive): the relay
    picks the same partition any Kafka producer would, but hashes a card's key once, not per
    event (kafka-python's murmur2 is pure Python)."""
    return int(murmur2(key)) & 0x7FFFFFFF


def record_of(
    envelope: dict[str, Any], cloudevents: CloudEvents = DEFAULT
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of an envelope's record: keyed by card (stream for attempts and
    subjects) so that a card's events stay in order in one partition; the value is the
    envelope, the headers its CloudEvents attributes (binary mode) that consumers route on
    without parsing the value."""
    key = str(envelope["card_id"] or envelope["stream_id"]).encode()
    return key, orjson.dumps(envelope), cloudevents.event_headers(envelope, key)
