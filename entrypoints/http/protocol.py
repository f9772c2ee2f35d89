"""uvicorn's HTTP/1.1 protocol with limits: header and body timeouts, bounded headers (431),
a cap on open connections per process. uvicorn has none of these, so one client could hold a
connection (and a file descriptor) for ever, or send megabytes of headers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from infra.config import Settings


@dataclass(frozen=True)
class Limits:
    """The limits of one server's connections, from the settings."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_header_bytes: int = 16_384
    max_connections: int = 512

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.http_header_timeout_seconds, settings.http_body_timeout_seconds,
                   settings.http_max_header_bytes, settings.http_max_connections)


def limited_protocol(limits: Limits) -> Callable[..., LimitedHttpToolsProtocol]:
    """uvicorn's `http` option: the protocol with these limits. A partial, as it pickles: the
    worker processes of `api --processes N` receive it with their uvicorn config."""
    return partial(LimitedHttpToolsProtocol, limits=limits)


class HeadersTooLarge(Exception):
    pass


def _problem(status: int, reason: bytes, code: str, detail: str) -> bytes:
    """A whole response, written by the protocol itself: the app never saw the request."""
    body = orjson.dumps({"type": f"https://giftcards.example.com/problems/{code}",
                         "title": reason.decode(), "status": status, "code": code,
                         "detail": detail})
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, reason, len(body))
            + body)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """A request must have its headers within the header timeout of the connection (or of
    its first byte on a kept-alive one) and its body within the body timeout of its headers."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.deadline: asyncio.TimerHandle | None = None
        self.header_bytes = 0
        self.too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.abort()  # frees the descriptor now; the client sees a reset
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm(self.limits.header_timeout)  # the next request on a kept-alive one
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does (no upgrade is served)
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self.too_large:
                self._refuse(431, b"Request Header Fields Too Large", "headers_too_large",
                             f"request line and headers over {self.limits.max_header_bytes} "
                             "bytes")
            else:
                self._refuse(400, b"Bad Request", "bad_request", "not an HTTP/1.1 request")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        self._arm(self.limits.body_timeout)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > self.limits.max_header_bytes:
            self.too_large = True
            raise HeadersTooLarge

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _timed_out(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # an answer is on its way: it cannot become a 408
            return
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app's receive() sees a disconnect
            self.cycle.message_event.set()
        self._refuse(408, b"Request Timeout", "request_timeout",
                     "the request did not arrive in time")

    def _refuse(self, status: int, reason: bytes, code: str, detail: str) -> None:
        self._disarm()
        self.transport.write(_problem(status, reason, code, detail))
        self.transport.close()
