"""Console sessions: in this process's memory only, signed out after an idle time."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_SESSIONS = 10_000  # beyond: the least recently used is signed out


@dataclass
class Session:
    """One signed-in operator. Their key stays here (never in the cookie): every request
    checks it again against the register, so a disabled operator is out at once."""

    key: str
    operator: str
    role: str
    lang: str
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def check_csrf(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.open: dict[str, Session] = {}

    def start(self, key: str, operator: str, role: str, lang: str) -> str:
        """A new token (a new session: never one the browser had before signing in)."""
        if len(self.open) >= MAX_SESSIONS:
            oldest = min(self.open, key=lambda token: self.open[token].seen)
            del self.open[oldest]
        token = secrets.token_urlsafe(32)
        self.open[token] = Session(key, operator, role, lang, self.clock())
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session of this token, now marked used; an idle one is ended."""
        found = self.open.get(token or "")
        if found is None:
            return None
        now = self.clock()
        if now - found.seen > self.idle_seconds:
            del self.open[token or ""]
            return None
        found.seen = now
        return found

    def end(self, token: str | None) -> None:
        self.open.pop(token or "", None)
