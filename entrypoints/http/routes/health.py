"""For the platform: liveness, readiness, Prometheus metrics, and the API's own documents."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import logging
import socket
from html import escape
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from application.privacy import Privacy
from entrypoints.http import responses as answers
from entrypoints.http.context import ApiContext
from entrypoints.http.metrics import DUE_WARNING_DAYS
from entrypoints.http.problems import problem
from infra.kafka.floor import stopped_relays
from infra.kafka.links import refused_links

log = logging.getLogger("giftcards.api")
# Answered without a key: their operations say so (`security: []`).
PUBLIC: dict[str, Any] = {"security": []}


def routes(context: ApiContext) -> APIRouter:
    router = APIRouter()
    service, metrics = context.service, context.metrics

    @router.get("/health/live", operation_id="live", response_model=answers.Status,
                openapi_extra=PUBLIC)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready", operation_id="ready", response_model=answers.Status,
                openapi_extra=PUBLIC)
    async def ready() -> Response:
        try:
            await context.call(service.app.recorder.max_notification_id)
        except Exception as error:
            log.warning("store not reachable (%s)", type(error).__name__)
            return problem(503, "store_unavailable", "the event store is not reachable")
        bootstrap = service.settings.kafka_bootstrap
        if bootstrap and not await context.call(lambda: _reachable(bootstrap)):
            return problem(503, "kafka_unavailable", "no Kafka broker is reachable")
        return JSONResponse({"status": "ready"})

    @router.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        due = await context.call(lambda: Privacy(service).due_counts(DUE_WARNING_DAYS))
        metrics.requests_overdue.set(due["overdue"])
        metrics.requests_due.set(due["due_within"])
        try:
            for relay in await context.call(
                lambda: [*stopped_relays(service.db), *refused_links(service.db)]
            ):
                metrics.relay_stopped.labels(relay).set(1)
        except Exception as error:  # the other metrics still answer
            log.warning("relay state not readable (%s)", type(error).__name__)
        if service.clock is not None:
            metrics.clock_offset.set(-service.clock.offset_s)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(_docs_page(request.app.openapi()))

    @router.get("/asyncapi.yaml", include_in_schema=False)
    async def asyncapi_document() -> Response:
        """The Kafka contract (AsyncAPI), generated from the code like the committed file."""
        from infra import asyncapi

        return Response(asyncapi.text(), media_type="application/yaml")

    return router


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
