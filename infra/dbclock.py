"""Time from one place: this process's offset to the database's clock, refused past a bound."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from infra.config import ConfigError
from infra.db import Database
from infra.transient import is_transient

log = logging.getLogger("giftcards.clock")
REMEASURE_S = 60.0  # the offset is measured at start, then at most this long apart


class ClockSkewError(ConfigError):
    """This host's clock is further from the database's than GIFTCARDS_MAX_CLOCK_SKEW_SECONDS."""

    code = "clock_skew_exceeded"


class DatabaseClock:
    """What every shared time decision reads (event times, holds, guessing windows, leases):
    the local clock corrected by its measured offset to the database's, so that instances on
    hosts whose clocks drift still agree. Past the bound it raises ClockSkewError instead: a
    host that far off is taken for broken (no lease taken, no event recorded). SQLite is a file
    on this host: its clock is this one (offset 0)."""

    def __init__(
        self, db: Database, bound_s: float, local: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.bound_s = bound_s
        self.local = local
        self.offset_s = 0.0
        self._measured = -math.inf

    def measure(self) -> float:
        """The database's clock minus this host's, from one round trip (its middle)."""
        if self.db.is_postgres:
            before = self.local()
            rows = self.db.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
            after = self.local()
            self.offset_s = float(rows[0][0]) - (before + after) / 2
            if abs(self.offset_s) > self.bound_s:
                log.error("%s", self._refusal())
        self._measured = time.monotonic()
        return self.offset_s

    def check(self) -> None:
        """Raises ClockSkewError when the last measured offset is past the bound."""
        if abs(self.offset_s) > self.bound_s:
            raise ClockSkewError(self._refusal())

    def epoch(self) -> float:
        """The database's time in seconds since the epoch (leases)."""
        if time.monotonic() - self._measured > REMEASURE_S:
            try:
                self.measure()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.debug("clock offset not measured (the database is away): %s", exc)
        self.check()
        return self.local() + self.offset_s

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.epoch(), UTC)

    def _refusal(self) -> str:
        return (f"this host's clock is {-self.offset_s:+.1f} s off the database's (bound: "
                f"GIFTCARDS_MAX_CLOCK_SKEW_SECONDS={self.bound_s:g}): no lease is taken and "
                f"no event recorded until the clocks agree (NTP)")
