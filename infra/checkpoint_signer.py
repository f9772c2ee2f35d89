"""The checkpoint signing loop, one signer per store: the `serve` instance holding the checkpoint
lease signs, the others stand by and take over once it lapses (as relays do)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from infra.checkpoints import Checkpointer
from infra.db import Database
from infra.lease import Lease, current_holder, instance_id
from infra.ratelog import RateLimitedLog

log = logging.getLogger("giftcards.checkpoints")
LEASE_NAME = "giftcards-checkpoints"


class SigningLease:
    """`held()` before each signing: takes or renews the lease. While held, a thread with a
    connection of its own renews it, so a long full checkpoint (seconds at 100k cards) does not
    let a standby start a second chain meanwhile."""

    def __init__(self, db: Database, holder: str | None = None, seconds: float = 10.0,
                 clock: Callable[[], float] = time.time, *, keeper: bool = True) -> None:
        self.db = db
        self.name = LEASE_NAME
        self.holder = holder or instance_id()
        self.lease = Lease(db, self.name, self.holder, seconds, clock=clock)
        self.active = False
        self._waits = RateLimitedLog(log)
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        if keeper and not db.in_memory:
            self._keeper = threading.Thread(target=self._keep, daemon=True,
                                            name="checkpoint-lease")
            self._keeper.start()

    def held(self) -> bool:
        """True if this instance signs now (it took or renewed the lease)."""
        held = self.lease.acquire()
        if held and not self.active:
            log.info("checkpoints: %s signs", self.holder)
            self._waits.reset("standby")
        elif not held:
            if self.active:
                log.warning("checkpoints: %s lost the signing lease: standing by", self.holder)
            current = current_holder(self.db, self.name)
            self._waits.info("standby", "checkpoints: %s standing by (signing: %s)",
                             self.holder, current.holder if current else "nobody")
        self.active = held
        return held

    def release(self) -> None:
        """Hand the lease back at once (a graceful stop; best effort: it lapses otherwise)."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(5)
        try:
            self.lease.release()
        except Exception as exc:
            log.info("checkpoints: %s could not release its lease: %s", self.holder, exc)
        self.active = False

    def _keep(self) -> None:
        db = Database(self.db.url, 1)
        keeper = Lease(db, self.name, self.holder, self.lease.seconds, clock=self.lease.clock)
        try:
            while not self._stop.wait(self.lease.seconds / 4):
                if self.active:
                    try:
                        keeper.acquire()
                    except Exception as exc:  # the database away: `held()` decides
                        log.debug("checkpoints: %s could not renew its lease: %s",
                                  self.holder, exc)
        finally:
            db.close()


def signing_instance(db: Database) -> str | None:
    """The instance that signs checkpoints now (None: no live holder), for `status`."""
    holder = current_holder(db, LEASE_NAME)
    return holder.holder if holder and holder.expires_at >= time.time() else None


def every(checkpointer: Checkpointer, sign: Any, events: int, seconds: float,
          stop: Any, poll: float = 5.0, increment: Any = None, *, active: Any = None) -> None:
    """Calls `sign()` whenever `events` new events were stored, or `seconds` passed with at
    least one, until `stop` is set (a `threading.Event`); in between, `increment()` (if
    given) every `poll` seconds in which a card changed. With `active` (the signing lease's
    `held`), only while it says True: a standby keeps its chains read, ready to take over."""
    since, last = 0, time.monotonic()
    while not stop.is_set():
        since += checkpointer.catch_up()
        if active is not None and not active():
            since, last = 0, time.monotonic()  # the cadence starts afresh on taking over
            stop.wait(poll)
            continue
        if since and (since >= events or time.monotonic() - last >= seconds):
            sign()
            since, last = 0, time.monotonic()
        elif increment is not None and checkpointer.changed:
            increment()
        stop.wait(poll)
