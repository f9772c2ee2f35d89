"""RFC 9457 problem documents: one shape for every error, with the CLI's stable codes."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from domain.errors import DomainError

PROBLEM_TYPE = "https://giftcards.example.com/problems/"
INPUT_CODES = {"invalid_amount", "invalid_input", "invalid_id", "invalid_date", "unknown_market"}
NOT_FOUND = {"unknown_card", "unknown_hold", "unknown_api_key", "not_found"}
# R21: personal data without an operator, or not this operator's right.
FORBIDDEN = {"operator_required", "unknown_operator", "operator_forbidden", "operator_mismatch",
             "invalid_operator_key", "operator_key_required", "role_above_own"}
# Refusals that depend on the time or on another request, not on this one: never stored under
# an Idempotency-Key, so the same request retried later gets a fresh answer.
RETRY_LATER = {"too_many_attempts", "card_on_hold", "unknown_order", "conflict"}
STATUS_TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}
# A store or broker that is away: most come back within seconds (a restart, a failover).
UNAVAILABLE_RETRY_SECONDS = 2


def status_of(error: DomainError) -> int:
    if error.code in INPUT_CODES or error.code == "idempotency_key_reused":
        return 422
    if error.code in NOT_FOUND:
        return 404
    if error.code in FORBIDDEN:
        return 403
    if error.code == "too_many_attempts":
        return 429
    return 409  # a rule of the terms refused it


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE + code,
        "title": STATUS_TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    if status == 503:
        headers = {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS), **(headers or {})}
    return JSONResponse(
        problem_body(status, code, detail, **extra),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def domain_problem(error: DomainError) -> tuple[int, dict[str, Any]]:
    status = status_of(error)
    return status, problem_body(status, error.code, error.message)
