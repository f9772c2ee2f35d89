"""Keeps a long-running process's parts running: retries and restarts with backoff until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from infra.config import ConfigError
from infra.ratelog import RateLimitedLog, backoff
from infra.transient import is_transient, refused_login

log = logging.getLogger("giftcards.supervisor")
waits = RateLimitedLog(log)
RESTART_CAP_S = 10.0
HEALTHY_AFTER_S = 60.0  # a part that ran this long before failing starts its backoff afresh

Part = Callable[[threading.Event], None]


def retry_until_done(stop: threading.Event, what: str, step: Callable[[], object]) -> bool:
    """Runs `step` until it succeeds (True) or `stop` is set (False), with capped backoff;
    says what it waits for at most once per 10 s. A ConfigError or a database login refused
    (a link the server refuses: certificate, credentials) is raised at once: no wait cures a
    wrong setting."""
    failures = 0
    while not stop.is_set():
        try:
            step()
        except ConfigError:
            raise
        except Exception as exc:
            if refused_login(exc):  # the database refused our credentials or TLS settings
                raise
            failures += 1
            delay = backoff(failures, cap=RESTART_CAP_S)
            waits.warning(what, "waiting for %s: %s: %s", what, type(exc).__name__, exc)
            stop.wait(delay)
            continue
        if failures:
            log.info("%s done after %d failed attempts", what, failures)
        waits.reset(what)
        return True
    return False


def supervise(name: str, part: Part, stop: threading.Event) -> None:
    """Runs `part(stop)` until `stop` is set, restarting it with backoff whenever it raises
    (or returns early): one failing part neither stops the process nor the other parts."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            part(stop)
            if stop.is_set():
                return
            raise RuntimeError(f"{name} returned before it was asked to stop")
        except Exception as exc:
            if time.monotonic() - started > HEALTHY_AFTER_S:
                failures = 0
            failures += 1
            delay = backoff(failures, base=0.5, cap=RESTART_CAP_S)
            if is_transient(exc):
                # The database is away, not a bug of the part: one line, no traceback.
                waits.warning(
                    name,
                    "%s waits for the database (%s: %s); restarting it in %.1f s",
                    name, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "",
                    delay,
                )
            else:
                waits.log(
                    logging.WARNING,
                    name,
                    "%s failed (%s: %s); restarting it in %.1f s (%d failures in a row)",
                    name,
                    type(exc).__name__,
                    exc,
                    delay,
                    failures,
                    exc_info=exc,
                )
            stop.wait(delay)


def run_parts(parts: dict[str, Part], stop: threading.Event, join_timeout: float = 60.0) -> None:
    """Each part in its own supervised thread; returns once `stop` is set and they finished
    (or `join_timeout` passed: the threads are daemons)."""
    threads = [
        threading.Thread(target=supervise, args=(name, part, stop), name=name, daemon=True)
        for name, part in parts.items()
    ]
    for thread in threads:
        thread.start()
    while not stop.wait(0.5):
        pass
    deadline = time.monotonic() + join_timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("%s did not stop within %.0f s", thread.name, join_timeout)
