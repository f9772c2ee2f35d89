"""schemathesis against the running API's /openapi.json (issue 12): no 5xx, no response outside
the document, every operation, bounded examples (a real uvicorn process on SQLite)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from application.apikeys import ApiKeys
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET
from tests.e2e.test_http_api import start_api


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("schema")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    env = {**clean, "GIFTCARDS_DATA_DIR": str(tmp / "var"), "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp / 'schema.sqlite3'}"}
    service = build(load_settings(env))
    key = ApiKeys(service.app).create(
        name="schema", scopes=["checkout", "orders", "support", "audit"])["key"]
    service.close()
    process, url = start_api(env, Path(tmp / "api.log"))
    yield {"url": url, "key": key}
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert "Traceback" not in (tmp / "api.log").read_text()


def test_no_server_error_and_every_response_in_the_document(served: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(served["url"] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    headers = {"Authorization": f"Bearer {served['key']}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=served["url"], headers=headers)
            assert response.status_code < 500, (case.operation.label, response.status_code)
            assert "Traceback" not in response.text
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                assert content_type[0].startswith("application/problem+json")
            case.validate_response(response, checks=[
                response_schema_conformance, content_type_conformance,
            ])

        check()
