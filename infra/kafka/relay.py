"""Exactly-once relay: the store's notification log → `giftcard.events`, in Kafka transactions."""

from __future__ import annotations

import logging
import threading
import time

from infra.db import Database
from infra.kafka.clients import Link
from infra.kafka.cloudevents import CloudEvents
from infra.kafka.floor import mark_stopped
from infra.kafka.links import ForgedLinkError, mark_refused
from infra.kafka.positions import PositionBelowFloorError
from infra.kafka.publisher import Publisher
from infra.kafka.topics import TopicContractError, Topics
from infra.kafka.transactions import FENCED
from infra.lease import Lease, current_holder, instance_id, lease_clock
from infra.ratelog import RateLimitedLog, backoff
from infra.service import Service

log = logging.getLogger("giftcards.relay")
POLL_INTERVAL_S = 0.2
RETRIES = 5  # `drain` (one-shot) gives up after these; `run` never does
BATCH_SIZE = 5000  # events per Kafka transaction, at most: fewer commits, ~3 MB in hand


class RelayBusyError(Exception):
    """Another relay holds the lease for this transactional id (a one-shot run does not wait)."""


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
        self.stopped_below_floor: PositionBelowFloorError | None = None
        self.publisher = Publisher(service, bootstrap, topics, transactional_id=transactional_id,
                                   batch_size=batch_size, instance=self.instance,
                                   cloudevents=self.cloudevents, waits=self._waits)

    @property
    def position(self) -> int:
        """The last notification id committed to Kafka (read from Kafka when not yet known)."""
        if self.publisher.position is None:
            self.publisher.connect()
        assert self.publisher.position is not None
        return self.publisher.position

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
                published = self.publisher.publish_batch()
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
            if published < self.batch_size and not self.publisher.held_back:
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
                    seen = self.publisher.publish_batch()
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
        if self.service.db.in_memory:
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
            mark_stopped(self.service.db, self.transactional_id, self.publisher.read_below)
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
        self.publisher.reset()
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
            self.publisher.reset()
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
        self.publisher.reset()
        return delay
