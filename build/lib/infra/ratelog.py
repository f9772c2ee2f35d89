"""Rate-limited log lines: a process that waits says so, at most once per interval per subject."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

WAIT_LOG_INTERVAL_S = 10.0


class RateLimitedLog:
    """Logs a message for a key at most once per `interval` seconds; the next line that gets
    through says how many were held back, so an outage reads as one line per interval, not
    thousands (nor silence)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = WAIT_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(
        self,
        level: int,
        key: str,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log `message % args` unless `key` was logged less than `interval` ago; True if logged."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            message += " (%d similar lines held back)"
            args = (*args, held)
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True

    def warning(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def info(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.INFO, key, message, *args)

    def reset(self, key: str) -> None:
        """The wait is over: the next wait on `key` is logged at once."""
        with self._lock:
            self._last.pop(key, None)
            self._held.pop(key, None)


def backoff(failures: int, *, base: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff after `failures` consecutive failures, capped."""
    return float(min(cap, base * 2.0 ** min(failures, 30)))
