"""What the API's routers share: the use cases, the thread pool and writer, access by key, and
the replies stored under an Idempotency-Key."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from application.apikeys import ApiKeys
from application.holds import Holds
from application.operators import Actor, Operators, check_allowed
from application.privacy_reads import logged_read
from application.unit_of_work import UnitOfWork
from composition.bootstrap import build_card_facts_reader, build_projector
from domain.apikeys import ApiKey
from domain.errors import DomainError, refuse
from entrypoints.http.metrics import Metrics
from entrypoints.http.middleware import GATE_KEY
from entrypoints.http.problems import RETRY_LATER, domain_problem
from entrypoints.http.replies import MAX_KEY, HttpReply, fingerprint, raw_fingerprint, without_codes
from entrypoints.http.writer import Writer
from infra.service import Service

T = TypeVar("T")



class GatedBearer(HTTPBearer):
    """The Bearer scheme of the OpenAPI document; at run time the key the Gate already read
    for this request (one read per request), else the credentials to read."""

    async def __call__(  # type: ignore[override]
        self, request: Request,
    ) -> ApiKey | HTTPAuthorizationCredentials | None:
        found = request.scope.get("state", {}).get(GATE_KEY)
        return found if isinstance(found, ApiKey) else await super().__call__(request)


# The API key (`giftcards api-key create`, or an operator's own from `gdpr operator add`) as a
# Bearer token; Gate refuses a request to /v1/ without a valid one before anything is read.
API_KEY = GatedBearer(
    auto_error=False, scheme_name="ApiKey",
    description="an API key as a Bearer token: `giftcards api-key create`, or an operator's "
    "own key from `gdpr operator add` for reads that name customers (R21)",
)
Credentials = Annotated[ApiKey | HTTPAuthorizationCredentials | None, Depends(API_KEY)]


class ApiContext:
    """One per app: reads run on a thread pool (one thread on SQLite, whose connection is not
    shared), commands through the writer (group commit) on that pool."""

    def __init__(
        self, service: Service, *, hold_seconds: int, workers: int | None, group_commit: bool,
    ) -> None:
        self.service = service
        self.app = service.app
        self.holds = Holds(self.app, hold_seconds=hold_seconds)
        self.keys = ApiKeys(self.app, cache_seconds=service.settings.api_key_cache_seconds)
        self.operators = Operators(self.app, self.keys)
        self.metrics = Metrics()
        sqlite = service.settings.database_url.startswith(("sqlite", "memory"))
        self.pool = ThreadPoolExecutor(max_workers=1 if sqlite else (workers or 16))
        self.writer = Writer(self.app, self.pool, grouped=group_commit,
                             observe=self.metrics.batches.observe)
        self.facts = build_card_facts_reader(service)
        self._views: list[Any] = []
        self._views_lock = threading.Lock()

    async def close(self) -> None:
        """What the event loop holds, closed before the loop ends (the app's lifespan)."""
        if self.facts is not None:
            await self.facts.close()

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def retry_after(self) -> dict[str, str]:
        """The end of the guessing window (R8): when a refused subject may try again."""
        guessing = self.app.markets.guessing
        now = self.app.now()
        end = guessing.window_start(now) + timedelta(minutes=guessing.window_minutes)
        return {"Retry-After": str(max(1, int((end - now).total_seconds()) + 1))}

    # --- access ----------------------------------------------------------------------------

    async def key_of(self, authorization: str | None) -> ApiKey | None:
        scheme, _, given = (authorization or "").partition(" ")
        key = given.strip() if scheme.lower() == "bearer" else ""
        # A key read recently is answered here, without a trip to the thread pool.
        known, found = self.keys.cached(key)
        if not known:
            found = await self.call(lambda: self.keys.authenticate(key))
        return found

    async def bearer(self, credentials: ApiKey | HTTPAuthorizationCredentials | None) -> ApiKey:
        """The key the Gate read for this request, or the one the credentials name."""
        found = credentials if isinstance(credentials, ApiKey) or credentials is None else (
            await self.key_of(f"Bearer {credentials.credentials}"))
        if found is None:
            raise StarletteHTTPException(
                401, "a valid API key is required", {"WWW-Authenticate": "Bearer"}
            )
        return found

    def scoped(self, *scopes: str) -> Callable[..., Awaitable[ApiKey]]:
        async def dependency(credentials: Credentials) -> ApiKey:
            found = await self.bearer(credentials)
            if not set(scopes) & set(found.scopes):
                raise StarletteHTTPException(403, f"this key lacks the scope {scopes[0]}")
            return found

        dependency.scopes = scopes  # type: ignore[attr-defined]  # the role matrix reads it
        return dependency

    def operator_key(self, action: str) -> Callable[..., Awaitable[Actor]]:
        """R21: the key IS the operator (an operator's own key, from `gdpr operator add`);
        `X-Operator`, if sent, must name that operator; the role must allow `action`."""
        async def dependency(
            credentials: Credentials,
            x_operator: Annotated[str | None, Header(
                alias="X-Operator", max_length=100,
                description="optional: must be the operator of the key")] = None,
        ) -> Actor:
            found = await self.bearer(credentials)
            if found.operator is None:
                raise refuse("operator_required", "customer data is read with an operator's "
                             "own key (gdpr operator add), not a service's key")
            actor = await self.call(lambda: self.operators.actor_of(found))
            if x_operator is not None and x_operator != actor.name:
                raise refuse("operator_mismatch", "X-Operator is not the operator of this key")
            return check_allowed(actor, action)

        dependency.action = action  # type: ignore[attr-defined]  # the role matrix reads it
        return dependency

    def logged(self, actor: Actor, purpose: str, command: str, read: Callable[[], T],
               subjects: Callable[[T], Any]) -> Awaitable[T]:
        """R21: the key's operator reads; each customer shown is logged under their name."""
        return self.call(lambda: logged_read(self.service, actor.name, purpose, command, read,
                                             subjects))

    def fresh_views(self) -> Any:
        """Built on first use; in the embedded default a read first catches up with the store."""
        from projections import sources

        with self._views_lock:  # one catch-up at a time: two at once insert the same rows
            if not self._views:
                self._views.append(build_projector(self.service.settings))
            if self.service.settings.kafka_bootstrap is None:
                sources.sync_store(self.app, self._views[0])
        return self._views[0]

    # --- commands --------------------------------------------------------------------------

    async def idempotent(
        self,
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
            body = await self.writer.run(command, keys or ())
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

        code, body, replayed = await self.writer.run(run, [stream, *(keys or ())])
        media = "application/problem+json" if code >= 400 else "application/json"
        headers = self.retry_after() if code == 429 else {}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
            if "replayed" in body:
                body = {**body, "replayed": True}
        return JSONResponse(body, code, headers, media_type=media)
