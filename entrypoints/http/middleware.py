"""The API's ASGI middleware: timing, the key and media-type gate, and the body limits."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.http.metrics import Metrics
from entrypoints.http.problems import problem
from infra.wire.dead_letters import plain
from infra.wire.scan import MAX_DEPTH, duplicate_key, too_deep

MAX_BODY = 16 * 1024
# Where the Gate leaves the key it read, for the routes' dependencies: one read per request.
GATE_KEY = "api_key"


class Measure:
    """Counts and times every request by route, as a plain ASGI middleware: Starlette's
    `@app.middleware("http")` wraps each request in tasks and streams, which cost a busy API
    more CPU than the lookups it times."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts an answer

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


class Gate:
    """Before any body is read or parsed: 401 without a valid API key on /v1/, then 415 for a
    body that is not `application/json`. The key found is left in the request's state
    (GATE_KEY), so the route's scope check does not read it again."""

    def __init__(self, app: ASGIApp, authenticate: Callable[[str], Awaitable[Any]]) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        found = await self.authenticate(headers.get(b"authorization", b"").decode("latin-1"))
        if found is None:
            await _send(scope, receive, send, problem(
                401, "unauthenticated", "a valid API key is required",
                headers={"WWW-Authenticate": "Bearer"}))
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            with_body = (headers.get(b"content-length", b"0").strip() != b"0"
                         or b"transfer-encoding" in headers)
            if with_body and kind != b"application/json":
                await _send(scope, receive, send, problem(
                    415, "unsupported_media_type", "the body must be application/json"))
                return
        scope.setdefault("state", {})[GATE_KEY] = found
        await self.app(scope, receive, send)


class BodyLimits:
    """Refuses before any parser runs: bodies over MAX_BODY, nested too deep, not UTF-8, or
    giving a key twice."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await _send(scope, receive, send, problem(
                    413, "too_large", f"the body is over {MAX_BODY} bytes"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        refusal = None
        if too_deep(raw):
            refusal = problem(400, "too_deep", f"the body is nested deeper than {MAX_DEPTH}")
        else:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                refusal = problem(400, "not_utf8", "the body is not UTF-8")
            else:
                # As the Kafka input: a parser would keep the last of two equal keys.
                twice = duplicate_key(raw)
                if twice is not None:
                    refusal = problem(400, "duplicate_key",
                                      f"{plain(twice) or 'a key'}: given twice")
        if refusal is not None:
            await _send(scope, receive, send, refusal)
            return
        scope.setdefault("state", {})["raw_body"] = raw
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


async def _send(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    await response(scope, receive, send)
