"""The console's pages: decode the form, check the session, its CSRF token and the role, call
the same use cases as the HTTP API and the CLI, render a page."""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter

from application.operators import Operators
from entrypoints.console import audit, signin, support
from entrypoints.console.pages import Console
from infra.service import Service


def console_router(service: Service, operators: Operators,
                   call: Callable[[Callable[[], Any]], Awaitable[Any]],
                   fresh_views: Callable[[], Any]) -> APIRouter:
    """The console under /console/, over the API's own service, register and thread pool."""
    console = Console(service, operators, call, fresh_views)
    router = APIRouter(prefix="/console", include_in_schema=False)
    for area in (signin, support, audit):
        area.add_routes(router, console)
    return router
