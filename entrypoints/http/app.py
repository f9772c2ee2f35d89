"""The FastAPI application: decode, authorize, call the application, present (problems on error)."""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name
# dependencies local to create_app.


import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID

import orjson
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.apikeys import ApiKeys
from application.cards import UnitOfWork
from application.holds import Holds
from application.operators import (
    PERMISSIONS,
    ROLE_SCOPES,
    ROLES,
    Actor,
    Operators,
    check_allowed,
)
from application.privacy import Privacy, history_subjects, logged_read
from consumers.dead_letters import plain
from consumers.scan import MAX_DEPTH, duplicate_key, too_deep
from domain.apikeys import ApiKey
from domain.errors import DomainError, refuse
from domain.ids import check_id
from entrypoints.http.problems import RETRY_LATER, domain_problem, problem, problem_body
from entrypoints.http.replies import (
    MAX_KEY,
    HttpReply,
    fingerprint,
    raw_fingerprint,
    without_codes,
)
from entrypoints.http.writer import Writer
from infra.bootstrap import build_card_facts_reader
from infra.kafka.floor import stopped_relays
from infra.service import Service
from infra.transient import DATABASE_ERRORS, DATABASE_RETRY_AFTER_S, is_transient

log = logging.getLogger("giftcards.api")
MAX_BODY = 16 * 1024
MAX_MONEY = 10**9
T = TypeVar("T")

Text = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Code = Annotated[StrictStr, Field(min_length=1, max_length=64)]
MarketCode = Annotated[StrictStr, Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]
Money = Annotated[StrictInt, Field(gt=0, le=MAX_MONEY, description="integer minor units")]
OrderId = Annotated[str, Path(min_length=1, max_length=200)]


# Starlette's own refusals, by status: stable codes like every other (the error catalogue).
HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "missing_scope",
              404: "not_found", 405: "method_not_allowed"}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupBody(Body):
    code: Code
    market: MarketCode
    customer_id: Text | None = None


class AuthorizeBody(Body):
    code: Code
    market: MarketCode
    order_total: Money
    customer_id: Text | None = None
    promo_codes: Annotated[list[Code], Field(max_length=20)] = []
    contains_gift_cards: StrictBool = False


class PurchaseBody(Body):
    order_id: Text
    market: MarketCode
    amount: Money
    payment_method: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    buyer_id: Text
    buyer_email: Annotated[StrictStr, Field(max_length=320)] | None = None
    buyer_name: Text | None = None
    recipient_email: Annotated[StrictStr, Field(max_length=320)] | None = None
    recipient_name: Text | None = None
    message: Annotated[StrictStr, Field(max_length=1000)] | None = None


class RefundBody(Body):
    order_id: Text
    amount: Money
    received_on: date
    request_id: Text | None = None
    # R17: the customer of the returned order owns the refund card and receives its e-mails.
    customer_id: Text | None = None
    customer_email: Annotated[StrictStr, Field(max_length=320)] | None = None
    customer_name: Text | None = None


class CancelBody(Body):
    """R20: the purchase order id AND the card's code, both checked."""

    order_id: Text
    code: Code
    card_id: UUID | None = None


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
PROBLEM_RESPONSE = {
    "description": "RFC 9457 problem document",
    "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: PROBLEM_RESPONSE
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503)
}


DUE_WARNING_DAYS = 7  # /metrics counts the rights requests due within a week (P1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "giftcards_http_requests", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "giftcards_http_request_seconds", "HTTP request latency", ["route"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5),
        )
        self.holds = Counter(
            "giftcards_holds", "hold operations accepted", ["operation"], registry=self.registry
        )
        self.refusals = Counter(
            "giftcards_refusals", "refusals by stable code", ["code"], registry=self.registry
        )
        self.requests_overdue = Gauge(
            "giftcards_gdpr_requests_overdue", "open rights requests past their due date (P1)",
            registry=self.registry,
        )
        self.requests_due = Gauge(
            "giftcards_gdpr_requests_due_within_days",
            f"open rights requests due within {DUE_WARNING_DAYS} days, late ones included (P1)",
            registry=self.registry,
        )
        self.relay_stopped = Gauge(
            "giftcards_relay_stopped", "1: the relay stopped, Kafka's committed position read "
            "below the one the broker confirmed (see status)", ["relay"], registry=self.registry,
        )
        self.clock_offset = Gauge(
            "giftcards_clock_offset_seconds", "this host's clock minus the database's, as last "
            "measured (past GIFTCARDS_MAX_CLOCK_SKEW_SECONDS: no lease, no event)",
            registry=self.registry,
        )
        self.batches = Histogram(
            "giftcards_commit_batch_commands", "commands saved per transaction (group commit)",
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )


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
    body that is not `application/json`."""

    def __init__(self, app: ASGIApp, authenticate: Callable[[str], Awaitable[bool]]) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not await self.authenticate(headers.get(b"authorization", b"").decode("latin-1")):
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


def create_app(
    service: Service, *, hold_seconds: int = 30 * 60, workers: int | None = None,
    group_commit: bool = True,
) -> FastAPI:
    """The API over one service; reads run on a thread pool (one thread on SQLite, whose
    connection is not shared), commands through the writer (group commit) on that pool."""
    app = service.app
    holds = Holds(app, hold_seconds=hold_seconds)
    keys = ApiKeys(app, cache_seconds=service.settings.api_key_cache_seconds)
    operators = Operators(app, keys)
    metrics = Metrics()
    sqlite = service.settings.database_url.startswith(("sqlite", "memory"))
    pool = ThreadPoolExecutor(max_workers=1 if sqlite else (workers or 16))
    writer = Writer(app, pool, grouped=group_commit, observe=metrics.batches.observe)
    facts = build_card_facts_reader(service)
    api = FastAPI(
        title="giftcards",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        description="Gift cards for the order service: lookups, holds, purchases, refunds.",
        responses=PROBLEMS,
    )

    async def call(fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn)

    # --- errors: every one a problem document ------------------------------------------

    @api.exception_handler(DomainError)
    async def _domain(request: Request, error: DomainError) -> Response:
        metrics.refusals.labels(error.code).inc()
        status, body = domain_problem(error)
        headers = retry_after() if status == 429 else None
        return JSONResponse(body, status, headers, media_type="application/problem+json")

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        # Field paths and error types only: an input value may be a code or personal data.
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "type": e.get("type")}
            for e in error.errors()[:20]
        ]
        return problem(422, "invalid_input", "the request does not match its schema",
                       errors=fields)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(error.status_code,
                              "bad_request" if error.status_code < 500 else "internal_error")
        headers = dict(error.headers or {})
        return problem(error.status_code, code, str(error.detail)[:200], headers=headers)

    async def _failed(request: Request, error: Exception) -> Response:
        if is_transient(error):
            # A fault of the database, not of the request: one line, no traceback.
            log.warning("database unavailable on %s (%s)", request.url.path[:100],
                        type(error).__name__)
            # A restart or a failover is over in seconds: the client may retry soon.
            return problem(503, "database_unavailable", "the database is unavailable; retry",
                           headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})
        log.error("internal error on %s (%s)", request.url.path[:100], type(error).__name__)
        return problem(500, "internal_error", "internal error")

    # Database errors by class: Starlette hands those to its exception middleware, which
    # answers; a handler for Exception itself also answers but then re-raises (a traceback
    # in the log for every request during a database restart).
    for kind in DATABASE_ERRORS:
        api.add_exception_handler(kind, _failed)
    api.add_exception_handler(Exception, _failed)

    def retry_after() -> dict[str, str]:
        guessing = app.markets.guessing
        now = app.now()
        end = guessing.window_start(now) + timedelta(minutes=guessing.window_minutes)
        return {"Retry-After": str(max(1, int((end - now).total_seconds()) + 1))}

    # --- access ----------------------------------------------------------------------------

    async def key_of(authorization: str | None) -> ApiKey | None:
        scheme, _, given = (authorization or "").partition(" ")
        key = given.strip() if scheme.lower() == "bearer" else ""
        # A key read recently is answered here, without a trip to the thread pool.
        known, found = keys.cached(key)
        if not known:
            found = await call(lambda: keys.authenticate(key))
        return found

    async def authenticated(authorization: str) -> bool:
        return await key_of(authorization) is not None

    async def bearer(authorization: str | None) -> ApiKey:
        found = await key_of(authorization)
        if found is None:
            raise StarletteHTTPException(
                401, "a valid API key is required", {"WWW-Authenticate": "Bearer"}
            )
        return found

    def scoped(*scopes: str) -> Callable[..., Awaitable[ApiKey]]:
        async def dependency(
            authorization: Annotated[str | None, Header()] = None,
        ) -> ApiKey:
            found = await bearer(authorization)
            if not set(scopes) & set(found.scopes):
                raise StarletteHTTPException(403, f"this key lacks the scope {scopes[0]}")
            return found

        dependency.scopes = scopes  # type: ignore[attr-defined]  # the role matrix reads it
        return dependency

    def operator_key(action: str) -> Callable[..., Awaitable[Actor]]:
        """R21: the key IS the operator (an operator's own key, from `gdpr operator add`);
        `X-Operator`, if sent, must name that operator; the role must allow `action`."""
        async def dependency(
            authorization: Annotated[str | None, Header()] = None,
            x_operator: Annotated[str | None, Header(
                alias="X-Operator", max_length=100,
                description="optional: must be the operator of the key")] = None,
        ) -> Actor:
            found = await bearer(authorization)
            if found.operator is None:
                raise refuse("operator_required", "customer data is read with an operator's "
                             "own key (gdpr operator add), not a service's key")
            actor = await call(lambda: operators.actor_of(found))
            if x_operator is not None and x_operator != actor.name:
                raise refuse("operator_mismatch", "X-Operator is not the operator of this key")
            return check_allowed(actor, action)

        dependency.action = action  # type: ignore[attr-defined]  # the role matrix reads it
        return dependency

    async def idempotent(
        request: Request,
        key: ApiKey,
        idempotency_key: str | None,
        command: Callable[[UnitOfWork], dict[str, Any]],
        status: int = 200,
        keys: list[UUID] | None = None,
    ) -> Response:
        """Runs the command through the writer; with an Idempotency-Key (scoped to the API
        key), a reply of a request that ran is stored in the same transaction as its effect
        and a repeat gets it again, marked `Idempotent-Replayed: true` (another body: 422).
        A refusal that depends on time (RETRY_LATER) or a fault is never stored."""
        if idempotency_key is None:
            body = await writer.run(command, keys or ())
            return JSONResponse(body, status)
        if not 0 < len(idempotency_key) <= MAX_KEY or not idempotency_key.isprintable():
            raise refuse("invalid_input", f"Idempotency-Key must be 1 to {MAX_KEY} characters")
        raw = request.scope.get("state", {}).get("raw_body", b"")
        request_id = (request.method, request.url.path, request.url.query, raw)
        print_ = fingerprint(*request_id)
        stream = HttpReply.id_for(key.key_id, idempotency_key)

        def run(uow: UnitOfWork) -> tuple[int, dict[str, Any], bool]:
            prior = uow.get(stream, HttpReply)
            if prior is not None:
                if prior.fingerprint not in (print_, raw_fingerprint(*request_id)):
                    raise refuse(
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for another request",
                    )
                return prior.status, prior.body, True
            try:
                answer = status, command(uow)
            except DomainError as error:
                answer = domain_problem(error)
                if error.code in RETRY_LATER:
                    return *answer, False
            stored = answer[1] if answer[0] >= 400 else without_codes(answer[1])
            uow.add(HttpReply.record(stream, print_, answer[0], stored))
            return *answer, False

        code, body, replayed = await writer.run(run, [stream, *(keys or ())])
        media = "application/problem+json" if code >= 400 else "application/json"
        headers = retry_after() if code == 429 else {}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
            if "replayed" in body:
                body = {**body, "replayed": True}
        return JSONResponse(body, code, headers, media_type=media)

    IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
    Simulate = Annotated[bool, Query(description="the full decision, nothing stored")]

    # --- health, metrics, docs -----------------------------------------------------------

    @api.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/health/ready")
    async def ready() -> Response:
        try:
            await call(app.recorder.max_notification_id)
        except Exception as error:
            log.warning("store not reachable (%s)", type(error).__name__)
            return problem(503, "store_unavailable", "the event store is not reachable")
        bootstrap = service.settings.kafka_bootstrap
        if bootstrap and not await call(lambda: _reachable(bootstrap)):
            return problem(503, "kafka_unavailable", "no Kafka broker is reachable")
        return JSONResponse({"status": "ready"})

    @api.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        due = await call(lambda: Privacy(service).due_counts(DUE_WARNING_DAYS))
        metrics.requests_overdue.set(due["overdue"])
        metrics.requests_due.set(due["due_within"])
        try:
            for relay in await call(lambda: stopped_relays(service.db)):
                metrics.relay_stopped.labels(relay).set(1)
        except Exception as error:  # the other metrics still answer
            log.warning("relay state not readable (%s)", type(error).__name__)
        if service.clock is not None:
            metrics.clock_offset.set(-service.clock.offset_s)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(api.openapi()))

    @api.get("/asyncapi.yaml", include_in_schema=False)
    async def asyncapi_document() -> Response:
        """The Kafka contract (AsyncAPI), generated from the code like the committed file."""
        from infra import asyncapi

        return Response(asyncapi.text(), media_type="application/yaml")

    # --- checkout: lookup and holds ------------------------------------------------------

    @api.post("/v1/cards/lookup", response_model=dict[str, Any])
    async def lookup(
        body: LookupBody, key: Annotated[ApiKey, Depends(scoped("checkout"))]
    ) -> Response:
        """A code's card on this market; unknown and other-market codes are answered alike,
        and count against the customer (or this key) for R8."""
        source = str(key.key_id)
        answer: dict[str, Any] | None = None
        if facts is not None:
            # The common case in one round trip from the event loop; whatever would write
            # (an unknown code, a locked-out subject, a hold to release) runs in full below.
            plan = holds.plan_lookup(code=body.code, market=body.market, source=source,
                                     customer_id=body.customer_id)
            card, counts = await facts.read(plan.code_index, plan.guards)
            answer = holds.answer_from_facts(plan, card, counts)
        if answer is None:
            answer = await call(lambda: holds.lookup(
                code=body.code, market=body.market, customer_id=body.customer_id, source=source,
            ))
        # Bytes as they go out: the busiest call skips the response model's re-check.
        return Response(orjson.dumps(answer), media_type="application/json")

    # OpenAPI links: a hold is named by its order id, so an authorization leads to the
    # capture and the void of the same path parameter (clients and stateful tests follow them).
    hold_links = {
        name: {"operationId": name, "parameters": {"order_id": "$request.path.order_id"},
               "description": f"{name} this hold"}
        for name in ("capture", "void")
    }

    @api.post("/v1/checkouts/{order_id}/authorize", operation_id="authorize",
              responses={200: {"description": "the hold", "links": hold_links}})
    async def authorize(
        request: Request, order_id: OrderId, body: AuthorizeBody,
        key: Annotated[ApiKey, Depends(scoped("checkout"))],
        idempotency_key: IdemKey = None, simulate: Simulate = False,
    ) -> Response:
        """R6, R8-R13, then the card is held for this order until captured, voided or timed
        out."""
        def command(uow: UnitOfWork) -> dict[str, Any]:
            return holds.authorize(
                code=body.code, market=body.market, order_id=order_id,
                order_total=body.order_total, customer_id=body.customer_id,
                source=str(key.key_id), promo_codes=body.promo_codes,
                contains_gift_card=body.contains_gift_cards, simulate=simulate, within=uow,
            )

        if simulate:
            return JSONResponse({**await call(lambda: command(UnitOfWork(app))),
                                 "simulated": True})
        wanted = holds.authorize_keys(code=body.code, order_id=order_id,
                                      customer_id=body.customer_id, source=str(key.key_id))
        response = await idempotent(request, key, idempotency_key, command, keys=wanted)
        if response.status_code == 200:
            metrics.holds.labels("authorize").inc()
        return response

    @api.post("/v1/checkouts/{order_id}/capture", operation_id="capture")
    async def capture(
        request: Request, order_id: OrderId,
        key: Annotated[ApiKey, Depends(scoped("checkout"))], idempotency_key: IdemKey = None,
    ) -> Response:
        """The hold becomes the card's single use (R11: the remainder is forfeited)."""
        response = await idempotent(
            request, key, idempotency_key,
            lambda uow: holds.capture(order_id=order_id, within=uow),
            keys=holds.order_keys(order_id),
        )
        if response.status_code == 200:
            metrics.holds.labels("capture").inc()
        return response

    @api.post("/v1/checkouts/{order_id}/void", operation_id="void")
    async def void(
        request: Request, order_id: OrderId,
        key: Annotated[ApiKey, Depends(scoped("checkout"))], idempotency_key: IdemKey = None,
    ) -> Response:
        """Releases the hold (the bank payment failed, the cart was abandoned)."""
        response = await idempotent(
            request, key, idempotency_key,
            lambda uow: holds.void(order_id=order_id, within=uow),
            keys=holds.order_keys(order_id),
        )
        if response.status_code == 200:
            metrics.holds.labels("void").inc()
        return response

    # --- orders: purchases and refunds ----------------------------------------------------

    @api.post("/v1/cards", status_code=201)
    async def purchase(
        request: Request, body: PurchaseBody, key: Annotated[ApiKey, Depends(scoped("orders"))],
        idempotency_key: IdemKey = None, simulate: Simulate = False,
    ) -> Response:
        """R1-R5: one card per order id (the natural idempotency key); its code shown once,
        and e-mailed to the buyer (R7): a repeat shows `code` null and says, under
        `code_delivery`, where the code went."""
        def command(uow: UnitOfWork) -> dict[str, Any]:
            done = app.purchase(**body.model_dump(), within=uow)
            return {**done, "code_delivery": app.code_delivery(uow, UUID(done["card_id"]))}

        if simulate:
            done = await call(lambda: command(UnitOfWork(app)))
            return JSONResponse({**done, "code": None, "simulated": True}, 200)
        return await idempotent(request, key, idempotency_key, command, status=201)

    @api.post("/v1/refunds", status_code=201)
    async def refund(
        request: Request, body: RefundBody, key: Annotated[ApiKey, Depends(scoped("orders"))],
        idempotency_key: IdemKey = None, simulate: Simulate = False,
    ) -> Response:
        """R16-R18: returned goods paid by card come back as a new card, the rest otherwise."""
        if body.request_id is not None:
            check_id("request_id", body.request_id)

        def command(uow: UnitOfWork) -> dict[str, Any]:
            return app.refund(
                order_id=body.order_id, returned_amount=body.amount,
                received_on=body.received_on, request_id=body.request_id,
                customer_id=body.customer_id, customer_email=body.customer_email,
                customer_name=body.customer_name, within=uow,
            )

        if simulate:
            done = await call(lambda: command(UnitOfWork(app)))
            return JSONResponse({**without_codes(done), "simulated": True}, 200)
        return await idempotent(request, key, idempotency_key, command, status=201)

    # --- support and reads ------------------------------------------------------------------

    @api.post("/v1/cancellations")
    async def cancel(
        request: Request, body: CancelBody, key: Annotated[ApiKey, Depends(scoped("support"))],
        idempotency_key: IdemKey = None,
    ) -> Response:
        """R19/R20: the purchase order id and the card's code, both checked."""
        return await idempotent(
            request, key, idempotency_key,
            lambda uow: app.cancel(body.card_id, code=body.code, order_id=body.order_id,
                                   within=uow),
        )

    Reader = Annotated[ApiKey, Depends(scoped("support", "audit", "orders"))]

    @api.get("/v1/cards/{card_id}")
    async def show(card_id: UUID, key: Reader) -> dict[str, Any]:
        """The card as of now: `held` while an order holds it, as a lookup says."""
        return await call(lambda: app.show(card_id))

    @api.get("/v1/holds/{order_id}")
    async def read_hold(
        order_id: OrderId, key: Annotated[ApiKey, Depends(scoped("checkout", "support"))]
    ) -> dict[str, Any]:
        """An order's hold as of now: `held` (amount, until), `captured` or `released`."""
        return await call(lambda: holds.show(order_id=order_id))

    def logged(actor: Actor, purpose: str, command: str, read: Callable[[], Any],
               subjects: Callable[[Any], Any]) -> Awaitable[dict[str, Any]]:
        """R21: the key's operator reads; each customer shown is logged under their name."""
        return call(lambda: logged_read(service, actor.name, purpose, command, read, subjects))

    HistoryReader = Annotated[Actor, Depends(operator_key("GET /v1/cards/{card_id}/history"))]

    @api.get("/v1/cards/{card_id}/history")
    async def history(card_id: UUID, actor: HistoryReader) -> dict[str, Any]:
        """The card's events; the customer ids they name: an operator's own key (R21)."""
        return await logged(actor, "card history", "GET history",
                            lambda: app.history(card_id), history_subjects)

    @api.post("/v1/holds/release-timed-out")
    async def sweep(key: Annotated[ApiKey, Depends(scoped("support"))]) -> dict[str, Any]:
        """The sweep `serve` runs: every hold past its time released (an event each)."""
        return await call(holds.release_timed_out)

    api.add_middleware(BodyLimits)
    api.add_middleware(Gate, authenticate=authenticated)
    # Outermost: times every answer, the body checks' refusals included.
    api.add_middleware(Measure, metrics=metrics)
    # --- audit: the finance and fraud views (read-only) ------------------------------------

    views: list[Any] = []

    def fresh_views() -> Any:
        """Built on first use; in the embedded default a read first catches up with the store."""
        from infra.bootstrap import build_projector
        from projections import sources

        if not views:
            views.append(build_projector(service.settings))
        if service.settings.kafka_bootstrap is None:
            sources.sync_store(app, views[0])
        return views[0]

    Auditor = Annotated[ApiKey, Depends(scoped("audit"))]

    @api.get("/v1/liability")
    async def liability(
        key: Auditor, market: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
        as_of: datetime | None = None,
    ) -> dict[str, Any]:
        """Outstanding balance and open cards per market, as of any past instant."""
        from projections.queries import liability as query

        return await call(lambda: query(fresh_views().db, as_of or app.now(), market))

    @api.get("/v1/breakage")
    async def breakage(
        key: Auditor, market: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
        month: Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$")] = None,
    ) -> dict[str, Any]:
        from projections.queries import breakage as query

        return await call(lambda: query(fresh_views().db, market, month))

    AlertReader = Annotated[Actor, Depends(operator_key("GET /v1/fraud/alerts"))]

    @api.get("/v1/fraud/alerts")
    async def fraud_alerts(
        actor: AlertReader, since: datetime | None = None,
        rule: Annotated[str | None, Query(pattern=r"^F[1-6]$")] = None,
    ) -> dict[str, Any]:
        """Profiling results about customers: an operator's own key, every customer logged
        (R21)."""
        from projections.queries import alerts

        return await logged(actor, "fraud review", "GET alerts",
                            lambda: alerts(fresh_views().db, since, rule),
                            lambda found: (a["customer_id"] for a in found["alerts"]))

    @api.get("/v1/audit/cards/{card_id}/verify")
    async def audit_verify(card_id: UUID, key: Auditor) -> dict[str, Any]:
        """Replays the card from the store, checks its hash chain and the balance view."""
        from projections.verify import verify_card

        def run() -> dict[str, Any]:
            app.card(card_id)  # unknown_card → 404
            events, problems = verify_card(app, fresh_views().db, card_id)
            return {"card_id": str(card_id), "events": events, "ok": not problems,
                    "problems": problems}

        return await call(run)

    return api


def access_table(api: FastAPI) -> dict[str, tuple[str, ...]]:
    """Each route that takes a key ("METHOD path") and the operator roles whose own key it
    accepts: by the role's right (application.operators.PERMISSIONS) on routes reading customer
    data, by the scopes of the role's key (ROLE_SCOPES) elsewhere. Generates the docs' role
    matrix; tests/e2e/test_role_matrix.py calls every route with every role's key."""
    table: dict[str, tuple[str, ...]] = {}
    for route in api.routes:
        dependant = getattr(route, "dependant", None)
        calls = [d.call for d in dependant.dependencies] if dependant is not None else []
        for method in sorted(getattr(route, "methods", None) or ()):
            name = f"{method} {getattr(route, 'path', '')}"
            for call in calls:
                if hasattr(call, "action"):
                    table[name] = PERMISSIONS[call.action]
                elif hasattr(call, "scopes"):
                    table[name] = tuple(role for role in ROLES
                                        if set(ROLE_SCOPES[role]) & set(call.scopes))
    return table


def _reachable(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=1):
                return True
        except (OSError, ValueError):
            continue
    return False


def _docs_page(openapi: dict[str, Any]) -> str:
    """Served from here, no CDN: works with no internet access."""
    from html import escape

    rows = []
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            rows.append(
                f"<tr><td>{escape(method.upper())}</td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(operation.get('description') or operation.get('summary', ''))}"
                "</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>giftcards API</title></head>"
        "<body><h1>giftcards API</h1><p>Machine-readable: <a href='/openapi.json'>"
        "/openapi.json</a> (OpenAPI 3.1). Errors are RFC 9457 problem documents.</p>"
        f"<table border='1'>{''.join(rows)}</table></body></html>"
    )


__all__ = ["MAX_BODY", "access_table", "create_app", "problem_body"]
