"""The OpenAPI document a client generator reads: valid, every answer typed, the key declared,
one problem type, and when to come back after 429 and 503."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from entrypoints.http.app import create_app
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("openapi")
    service = build(load_settings({"GIFTCARDS_DATABASE_URL": "memory://",
                                   "GIFTCARDS_SECRET_KEY": SECRET,
                                   "GIFTCARDS_DATA_DIR": str(tmp / "var")}))
    try:
        yield create_app(service).openapi()
    finally:
        service.close()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_every_success_has_a_named_schema(document: dict[str, Any]) -> None:
    for name, operation in operations(document):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, name
        for status, response in successes.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema.get("$ref", "").startswith("#/components/schemas/"), (name, status)


def test_every_error_is_the_one_problem_document(document: dict[str, Any]) -> None:
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if status >= "400":
                assert response["content"] == {
                    "application/problem+json": {"schema": PROBLEM_REF}}, (name, status)
    assert {"type", "title", "status", "code", "detail"} <= set(
        document["components"]["schemas"]["Problem"]["required"])


def test_retry_after_is_declared_on_429_and_503(document: dict[str, Any]) -> None:
    for name, operation in operations(document):
        responses = operation["responses"]
        assert responses["429"]["headers"]["Retry-After"]["required"] is True, name
        assert "Retry-After" in responses["503"]["headers"], name


def test_the_api_key_is_a_declared_bearer_scheme_on_every_v1_operation(
    document: dict[str, Any],
) -> None:
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        **document["components"]["securitySchemes"]["ApiKey"], "type": "http",
        "scheme": "bearer"}
    for name, operation in operations(document):
        expected = [{"ApiKey": []}] if " /v1/" in name else []
        assert operation["security"] == expected, name
        assert "authorization" not in {p["name"].lower() for p in operation.get(
            "parameters", [])}, name


def test_dry_runs_answer_a_documented_200(document: dict[str, Any]) -> None:
    for path in ("/v1/cards", "/v1/refunds"):
        assert {"200", "201"} <= set(document["paths"][path]["post"]["responses"]), path


def test_an_unavailable_answer_says_when_to_retry() -> None:
    from entrypoints.http.problems import problem

    assert int(problem(503, "database_unavailable", "retry").headers["Retry-After"]) >= 1
