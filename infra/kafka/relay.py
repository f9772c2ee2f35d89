"""Exactly-once relay: the store's notification log → `giftcard.events`, in Kafka transactions."""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Any

import orjson
from kafka import KafkaProducer, TopicPartition
from kafka.errors import InvalidProducerEpochError, KafkaTimeoutError, ProducerFencedError
from kafka.partitioner.default import murmur2

from infra.config import ConfigError
from infra.db import Database
from infra.envelope import published_topics, stored_envelope
from infra.kafka import clients
from infra.kafka.admin import verify_topics
from infra.kafka.clients import Link, bootstrap_of
from infra.kafka.cloudevents import DEFAULT, CloudEvents
from infra.kafka.floor import mark_stopped, raise_floor, read_floor
from infra.kafka.links import ForgedLinkError, LinkChecker, clear_refused, mark_refused
from infra.kafka.topics import TopicContractError, Topics
from infra.lease import Lease, current_holder, instance_id, lease_clock
from infra.limits import ProcessingLimits
from infra.ratelog import RateLimitedLog, backoff
from infra.service import Service

log = logging.getLogger("giftcards.relay")
POLL_INTERVAL_S = 0.2
RETRIES = 5  # `drain` (one-shot) gives up after these; `run` never does
BATCH_SIZE = 5000  # events per Kafka transaction, at most: fewer commits, ~3 MB in hand
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
ACK_TIMEOUT_S = 30.0
ACK_WAIT_STEP_S = 5.0
COMMIT_TIMEOUT_MS = 30_000
ABORT_TIMEOUT_MS = 5_000  # best effort only: the next init_transactions aborts it anyway
CLOSE_TIMEOUT_S = 2.0
POSITION_READ_TIMEOUT_S = 30.0
FENCED = (ProducerFencedError, InvalidProducerEpochError)
ORPHAN_SWEEP_KEY = b"giftcards-relay-sweep"  # the records of the abort after each init
# The relay's committed position, one record per transaction on `giftcard.relay-positions`
# (key = the transactional id): the last notification id published.
POSITION_SCHEMA: dict[str, Any] = {
    "title": "RelayPosition",
    "type": "object",
    "properties": {"position": {"type": "integer", "minimum": 0}},
    "required": ["position"],
    "additionalProperties": False,
}


class RelayBusyError(Exception):
    """Another relay holds the lease for this transactional id (a one-shot run does not wait)."""


class PositionBelowFloorError(ConfigError):
    """Kafka's committed position is below one whose commit the broker confirmed: the positions
    topic or the broker lost it. Publishing from there would publish events a second time."""

    code = "relay_position_regressed"


class Relay:
    """Publishes each stored event once: events and the relay's position commit together.
    One relay per transactional id is active, the holder of a lease in the store database;
    the others stand by and take over once it expires."""

    def __init__(
        self,
        service: Service,
        bootstrap: Link,
        topics: Topics,
        *,
        transactional_id: str = "giftcards-relay",
        batch_size: int = BATCH_SIZE,
        instance: str | None = None,
        lease_seconds: float | None = None,
        cloudevents: CloudEvents | None = None,
    ) -> None:
        self.service = service
        self.cloudevents = cloudevents or CloudEvents.of(service.settings)
        self.bootstrap = bootstrap
        self.topics = topics
        self.transactional_id = transactional_id
        self.batch_size = batch_size
        self.instance = instance or instance_id()
        seconds = lease_seconds or service.settings.relay_lease_seconds
        self.lease = Lease(service.db, transactional_id, self.instance, seconds,
                           clock=lease_clock(service))
        self.active = False
        self._renewed_at = 0.0
        self._waits = RateLimitedLog(log)
        self._producer: KafkaProducer | None = None
        self._position: int | None = None  # last notification id committed to Kafka
        # The highest position whose commit the broker confirmed (also kept in the store
        # database, `relay_floors`, for the next process): a later read of Kafka's committed
        # position below it means the broker or the positions topic lost that commit.
        self._confirmed = 0
        self._partitions = 0  # of the events topic, checked at each connect
        self.stopped_below_floor: PositionBelowFloorError | None = None
        self._read_below = 0
        # (first, last) notification ids of a batch whose commit got no answer: the next init
        # settles it, and the position read after it says which way.
        self._uncertain: tuple[int, int] | None = None
        # Who was restricted or objecting as of `_limits_at` (rebuilt when it is not the
        # position: a start, or a batch that did not commit).
        self._limits, self._limits_at = ProcessingLimits(), -1
        self._links = LinkChecker(service.app.recorder, service.app.mapper)
        self._refusal_to_clear = True  # a stop recorded by an earlier run, until we pass it

    @property
    def position(self) -> int:
        """The last notification id committed to Kafka (read from Kafka when not yet known)."""
        if self._position is None:
            self._connect()
        assert self._position is not None
        return self._position

    def drain(self) -> int:
        """Publish everything stored now; returns how many events were published. Waits up to
        two lease periods for the lease; gives up after RETRIES failures of one batch."""
        deadline = time.monotonic() + 2 * self.lease.seconds
        while not self._hold_lease():
            if time.monotonic() > deadline:
                raise RelayBusyError(f"another relay is active for {self.transactional_id}")
            time.sleep(min(1.0, self.lease.seconds / 4))
        total = failures = 0
        while True:
            if not self._hold_lease():
                raise RelayBusyError(f"lease for {self.transactional_id} lost")
            try:
                published = self._publish_batch()
            except (PositionBelowFloorError, ForgedLinkError, TopicContractError) as exc:
                if isinstance(exc, PositionBelowFloorError):
                    self._halt(exc)
                elif isinstance(exc, ForgedLinkError):
                    self._refuse(exc)
                raise
            except Exception as exc:
                failures += 1
                delay = self._recover(exc, failures)
                if failures >= RETRIES:
                    raise
                time.sleep(delay)
                continue
            failures = 0
            total += published
            if published < self.batch_size and not self._links.held_back:
                return total

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: publish batches while holding the lease, stand by otherwise. Any error
        (broker down, commit timed out, fenced, database away) aborts the transaction, drops
        the producer and retries from Kafka's committed position with capped backoff: it
        neither skips an event nor returns before `stop`."""
        failures = 0
        keeper = threading.Thread(
            target=self._keep_lease, args=(stop,), daemon=True, name="relay-lease"
        )
        keeper.start()
        try:
            while not stop.is_set():
                try:
                    if not self._hold_lease():
                        stop.wait(min(1.0, self.lease.seconds / 4))
                        continue
                    seen = self._publish_batch()
                except PositionBelowFloorError as exc:
                    self._halt(exc)
                    stop.wait()  # no republishing: an operator decides (docs/operations.md)
                    return
                except ForgedLinkError as exc:
                    self._refuse(exc)
                    stop.wait()  # never publish a forgery: an operator decides
                    return
                except TopicContractError:
                    raise  # the process refuses to run on (infra.supervisor)
                except Exception as exc:
                    failures += 1
                    stop.wait(self._recover(exc, failures))
                    continue
                if failures:
                    log.info("relay %s publishing again after %d failures", self.instance, failures)
                    failures = 0
                    self._waits.reset("kafka")
                if seen < self.batch_size:
                    stop.wait(POLL_INTERVAL_S)
        finally:
            self.close()

    def _keep_lease(self, stop: threading.Event) -> None:
        """While active, renew the lease from a thread and a connection of its own: a batch
        that blocks longer than the lease (a broker lost, a slow commit) must not let a standby
        take over and fence it, then be fenced back (relays would fence each other six
        times a minute). A lease that cannot be renewed lapses; the loop then learns it."""
        if self.service.db.url.startswith("sqlite:///:memory:"):
            return  # one process: nobody to hand over to
        db = Database(self.service.db.url, self.service.settings.db_pool_size)
        keeper = Lease(db, self.lease.name, self.lease.holder, self.lease.seconds,
                       clock=self.lease.clock)
        try:
            while not stop.wait(self.lease.seconds / 4):
                if not self.active:
                    continue
                try:
                    if keeper.acquire():
                        self._renewed_at = time.monotonic()
                except Exception as exc:  # the database away: the loop's own check decides
                    log.debug("relay %s could not renew its lease: %s", self.instance, exc)
        finally:
            db.close()

    def _halt(self, exc: PositionBelowFloorError) -> None:
        """The alert: an error line, the stop recorded for `status` and `/metrics`, the lease
        handed back (a standby finds the same floor and stops too)."""
        self.stopped_below_floor = exc
        log.error("relay %s stopped: %s", self.instance, exc)
        try:
            mark_stopped(self.service.db, self.transactional_id, self._read_below)
        except Exception as error:  # the log line stands; status shows it once the database does
            log.warning("relay %s could not record its stop: %s", self.instance, error)
        self.close()

    def _refuse(self, exc: ForgedLinkError) -> None:
        """The alert for a forged link: an error line, the stop recorded for `status` and
        `/metrics`, the lease handed back (a standby meets the same link and stops too)."""
        log.error("relay %s stopped: %s", self.instance, exc)
        try:
            mark_refused(self.service.db, self.transactional_id, exc)
        except Exception as error:  # the log line stands
            log.warning("relay %s could not record its stop: %s", self.instance, error)
        self.close()

    def close(self) -> None:
        """Drop the producer and hand the lease back (best effort: never raises)."""
        self._reset()
        if self.active:
            self.active = False
            try:
                self.lease.release()
            except Exception as exc:  # the lease then expires on its own
                log.info("relay %s could not release its lease: %s", self.instance, exc)

    def _hold_lease(self) -> bool:
        """Take or renew the lease (renewed a few times per period, not per batch); a relay
        that loses it drops its producer and stands by."""
        now = time.monotonic()
        if self.active and now - self._renewed_at < self.lease.seconds / 4:
            return True
        held = self.lease.acquire()
        if held:
            self._renewed_at = now
            if not self.active:
                tid = self.transactional_id
                log.info("relay %s is the active relay for %s", self.instance, tid)
                self._waits.reset("standby")
        elif self.active:
            log.warning("relay %s lost its lease: standing by", self.instance)
            self._reset()
        else:
            holder = current_holder(self.service.db, self.transactional_id)
            self._waits.info(
                "standby",
                "relay %s standing by while %s is active",
                self.instance,
                holder.holder if holder else "nobody",
            )
        self.active = held
        return held

    def _recover(self, exc: Exception, failures: int) -> float:
        """After a failed batch: abort, drop the producer, forget the position (re-read from
        Kafka by the next init, which also settles a commit whose outcome was unknown).
        Returns how long to wait."""
        delay = backoff(failures)
        if isinstance(exc, FENCED):
            # Another relay took over (our lease had lapsed): the next lease check stands by.
            log.warning("relay %s fenced by another relay: standing by", self.instance)
            self.active = False
        else:
            self._waits.warning(
                "kafka",
                "relay %s waiting: %s: %s (retrying from Kafka's committed position, "
                "%d failures so far)",
                self.instance,
                type(exc).__name__,
                exc,
                failures,
            )
        self._reset()
        return delay

    def _publish_batch(self) -> int:
        """One transaction: the next notifications' envelopes + the new position, committed
        only once the broker acknowledged every record of it."""
        producer = self._connect()
        assert self._position is not None
        started = time.monotonic()
        app = self.service.app
        # Private events (indexes, replies) are never published: the store filters them out.
        notifications = app.recorder.select_notifications(
            self._position + 1, self.batch_size, topics=published_topics()
        )
        if not notifications:
            return 0
        # Published up to a forged link, never past it (the next batch then stops there).
        notifications = self._links.sealed_prefix(notifications)
        last = notifications[-1].id
        if self._limits_at != self._position:
            self._limits = ProcessingLimits.from_store(app, self._position)
        self._limits_at = -1  # until this batch commits
        partitions = sorted(producer.partitions_for(self.topics.events))
        # Every record is built before the first is sent. Sent in a tight loop they fill the
        # producer's batches as a raw producer's do; built between sends, the sender thread
        # drained each partition's batch with a record or two in it, and was woken per batch.
        records = []
        for notification in notifications:
            envelope = stored_envelope(app.mapper, notification)
            assert envelope is not None  # the topic filter admits published events only
            envelope = self._limits.see(envelope)
            key, value, record_headers = record_of(envelope, self.cloudevents)
            records.append((key, value, record_headers,
                            partitions[key_hash(key) % len(partitions)]))
        producer.begin_transaction()
        sent = [
            producer.send(self.topics.events, key=key, value=value, headers=record_headers,
                          partition=partition)
            for key, value, record_headers, partition in records
        ]
        sent.append(
            producer.send(
                self.topics.relay_positions,
                key=self.transactional_id.encode(),
                value=orjson.dumps({"position": last}),
                partition=0,  # the one partition `committed_position` reads
            )
        )
        # kafka-python commits a transaction whose records expired unsent (events lost after a
        # broker outage): commit only when every record is acknowledged.
        self._await_acks(producer, len(sent))
        for future in sent:
            if not future.succeeded():
                raise future.exception or KafkaTimeoutError("record not acknowledged")
        try:
            end_transaction(producer, commit=True)
        except Exception:
            self._uncertain = (notifications[0].id, last)
            raise
        self._position = self._confirmed = self._limits_at = last
        try:
            raise_floor(self.service.db, self.transactional_id, last, self._partitions)
            if self._refusal_to_clear:
                clear_refused(self.service.db, self.transactional_id, last)
                self._refusal_to_clear = False
        except Exception as exc:  # a floor lower than the truth only weakens the check
            log.warning("relay %s could not record position %d: %s", self.instance, last, exc)
        elapsed = time.monotonic() - started
        published = len(notifications)
        log.info(
            "relayed %d events up to position %d (%.0f events/s)",
            published,
            last,
            published / elapsed if elapsed else 0.0,
        )
        return published

    def _await_acks(self, producer: KafkaProducer, records: int) -> None:
        """flush(), saying what it waits for while the broker does not answer; raises
        KafkaTimeoutError after ACK_TIMEOUT_S."""
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while True:
            try:
                producer.flush(timeout=ACK_WAIT_STEP_S)
                return
            except KafkaTimeoutError:
                if time.monotonic() > deadline:
                    raise
                self._waits.warning(
                    "kafka",
                    "relay %s waiting for Kafka at %s to acknowledge %d records",
                    self.instance,
                    bootstrap_of(self.bootstrap),
                    records,
                )

    def _connect(self) -> KafkaProducer:
        """Fence any zombie with our transactional id, then read where the last commit ended."""
        if self._producer is None:
            producer = clients.producer(
                self.bootstrap,
                transactional_id=self.transactional_id,
                max_block_ms=MAX_BLOCK_MS,
                bootstrap_timeout_ms=MAX_BLOCK_MS,
                **PRODUCER_SETTINGS,
            )
            self._producer = producer  # from here on, `_reset` closes it on any failure
            # Aborts a predecessor's open transaction (or settles our own commit whose answer
            # never came), so the position read below is final.
            producer.init_transactions()
            self._check_topics(producer)
            self._close_orphans(producer)
            self._position = self._settled(self._committed_position())
        return self._producer

    def _check_topics(self, producer: KafkaProducer) -> None:
        """At each (re)connect: the two topics still as the contract says, the events topic
        with the partition count of the last published position (raises TopicContractError)."""
        settings = self.service.settings
        verify_topics(self.bootstrap, self.topics,
                      [self.topics.events, self.topics.relay_positions],
                      settings.replication_factor, bootstrap_timeout_ms=MAX_BLOCK_MS)
        self._partitions = len(producer.partitions_for(self.topics.events))
        floor = read_floor(self.service.db, self.transactional_id)
        if floor is not None:
            self._confirmed = max(self._confirmed, floor.position)
            if floor.partitions and floor.partitions != self._partitions:
                raise TopicContractError(
                    f"topic {self.topics.events}: partition count is {self._partitions}, the "
                    f"relay published up to position {floor.position} with {floor.partitions} "
                    f"partitions: a card's later events would land on another partition than "
                    f"its earlier ones (per-card order lost). Restore the partition count, or "
                    f"republish into a new topic (docs/operations.md, topic contract)")

    def _close_orphans(self, producer: KafkaProducer) -> None:
        """Abort one transaction holding a record on every partition the relay writes (never
        seen by a read_committed reader). A broker that lost a commit it had confirmed (seen
        after a restart) can leave our records on a partition without any marker; the
        broker would count them into our next commit there, and the events we publish again
        would show twice. This abort's marker ends them as aborted first."""
        partitions = sorted(producer.partitions_for(self.topics.events))
        producer.begin_transaction()
        sent = [producer.send(self.topics.events, key=ORPHAN_SWEEP_KEY, value=b"", partition=p)
                for p in partitions]
        sent.append(producer.send(self.topics.relay_positions, key=ORPHAN_SWEEP_KEY, value=b"",
                                  partition=0))
        self._await_acks(producer, len(sent))
        for future in sent:
            if not future.succeeded():
                raise future.exception or KafkaTimeoutError("record not acknowledged")
        end_transaction(producer, commit=False, timeout_ms=COMMIT_TIMEOUT_MS)  # not best effort

    def _settled(self, read: int) -> int:
        """Kafka's committed position read after an init, said in the log with what it tells
        about an uncertain commit; a read below a confirmed commit is logged as an error."""
        manager = self._producer._transaction_manager if self._producer else None
        log.info("relay %s initialised (%s): Kafka's committed position is %d",
                 self.instance, manager.producer_id_and_epoch if manager else "-", read)
        if self._uncertain is not None:
            first, last = self._uncertain
            outcome = "committed" if read >= last else "aborted" if read < first else "unclear"
            log.warning("relay %s: the unanswered commit of positions %d-%d was %s",
                        self.instance, first, last, outcome)
            self._uncertain = None
        if read < self._confirmed:
            # Seen after a broker restart (a commit the coordinator confirmed, then forgot) and
            # with a positions topic that expired its records: publishing from `read` again
            # would put every event after it on the topic a second time.
            self._read_below = read
            raise PositionBelowFloorError(
                f"Kafka's committed position {read} on {self.topics.relay_positions} is below "
                f"{self._confirmed}, whose commit the broker confirmed: the broker or the "
                f"positions topic lost it; not publishing again from {read + 1}")
        return read

    def _reset(self) -> None:
        """Drop the producer (aborting its transaction) and the position; never raises."""
        producer, self._producer, self._position = self._producer, None, None
        if producer is None:
            return
        try:
            end_transaction(producer, commit=False)
        except Exception as exc:  # none open, fenced or broker away: the next init aborts it
            log.debug("abort after failure did not complete: %s", exc)
        discard(producer)

    def _committed_position(self) -> int:
        return committed_position(self.bootstrap, self.topics, self.transactional_id)


def committed_position(bootstrap: Link, topics: Topics, transactional_id: str) -> int:
    """The last notification id that the relay `transactional_id` committed to Kafka (0 if
    none), read committed from the positions topic."""
    consumer = clients.consumer(
        bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        bootstrap_timeout_ms=MAX_BLOCK_MS,
    )
    try:
        partition = TopicPartition(topics.relay_positions, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        end = consumer.end_offsets([partition])[partition]
        position = 0
        key = transactional_id.encode()
        deadline = time.monotonic() + POSITION_READ_TIMEOUT_S
        while consumer.position(partition) < end:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError("reading the relay's committed position timed out")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == key:
                        position = int(orjson.loads(record.value)["position"])
        return position
    finally:
        consumer.close()


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
