"""Every error the API answers is a problem document: refusals, bad input, faults."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import DomainError
from entrypoints.http.context import ApiContext
from entrypoints.http.problems import domain_problem, problem
from infra.transient import DATABASE_ERRORS, DATABASE_RETRY_AFTER_S, is_transient

log = logging.getLogger("giftcards.api")

# Starlette's own refusals, by status: stable codes like every other (the error catalogue).
HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "missing_scope",
              404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(api: FastAPI, context: ApiContext) -> None:
    @api.exception_handler(DomainError)
    async def refused(request: Request, error: DomainError) -> Response:
        context.metrics.refusals.labels(error.code).inc()
        status, body = domain_problem(error)
        headers = context.retry_after() if status == 429 else None
        return JSONResponse(body, status, headers, media_type="application/problem+json")

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        # Field paths and error types only: an input value may be a code or personal data.
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "type": e.get("type")}
            for e in error.errors()[:20]
        ]
        return problem(422, "invalid_input", "the request does not match its schema",
                       errors=fields)

    @api.exception_handler(StarletteHTTPException)
    async def starlette(request: Request, error: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(error.status_code,
                              "bad_request" if error.status_code < 500 else "internal_error")
        headers = dict(error.headers or {})
        return problem(error.status_code, code, str(error.detail)[:200], headers=headers)

    async def failed(request: Request, error: Exception) -> Response:
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
        api.add_exception_handler(kind, failed)
    api.add_exception_handler(Exception, failed)
