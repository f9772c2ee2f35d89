"""The FastAPI application: the routers of each audience over one context, the middleware, and
every error a problem document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute

from application.operators import PERMISSIONS, ROLE_SCOPES, ROLES
from entrypoints.console.routes import console_router
from entrypoints.http.context import ApiContext
from entrypoints.http.document import openapi_document
from entrypoints.http.errors import install_error_handlers
from entrypoints.http.middleware import MAX_BODY, BodyLimits, Gate, Measure
from entrypoints.http.problems import problem_body
from entrypoints.http.routes import audit, checkout, health, orders, support
from infra.service import Service

RETRY_AFTER = {"description": "seconds to wait before trying again",
               "schema": {"type": "integer", "minimum": 1}}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": "RFC 9457 problem document",
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}},
        **({"headers": {"Retry-After": {**RETRY_AFTER, "required": status == 429}}}
           if status in (429, 503) else {}),
    }
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503)
}


def create_app(
    service: Service, *, hold_seconds: int = 30 * 60, workers: int | None = None,
    group_commit: bool = True,
) -> FastAPI:
    """The API over one service: each audience's router, then the middleware."""
    context = ApiContext(service, hold_seconds=hold_seconds, workers=workers,
                         group_commit=group_commit)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await context.close()

    api = FastAPI(
        title="giftcards",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        description="Gift cards for the order service: lookups, holds, purchases, refunds.",
        responses=PROBLEMS,
        lifespan=lifespan,
    )
    api.openapi = lambda: openapi_document(api)  # type: ignore[method-assign]
    install_error_handlers(api, context)
    api.include_router(health.routes(context))
    api.include_router(checkout.routes(context))
    api.include_router(orders.routes(context))
    api.include_router(support.routes(context))
    api.include_router(audit.routes(context))
    if service.settings.console:  # the operators' pages, over the same use cases
        api.include_router(console_router(service, context.operators, context.call,
                                           context.fresh_views))
    api.add_middleware(BodyLimits)
    api.add_middleware(Gate, authenticate=context.key_of)
    # Outermost: times every answer, the body checks' refusals included.
    api.add_middleware(Measure, metrics=context.metrics)
    return api


def access_table(api: FastAPI) -> dict[str, tuple[str, ...]]:
    """Each route that takes a key ("METHOD path") and the operator roles whose own key it
    accepts: by the role's right (application.operators.PERMISSIONS) on routes reading customer
    data, by the scopes of the role's key (ROLE_SCOPES) elsewhere. Generates the docs' role
    matrix; tests/e2e/test_role_matrix.py calls every route with every role's key."""
    table: dict[str, tuple[str, ...]] = {}
    for route in api_routes(api.routes):
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


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (newer FastAPI keeps an included router
    whole instead of copying its routes into the app)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)
        else:
            yield route


__all__ = ["MAX_BODY", "access_table", "create_app", "problem_body"]
