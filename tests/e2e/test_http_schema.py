"""schemathesis against the running API's /openapi.json: no 5xx, no response outside
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


def test_an_authorization_links_to_the_capture_and_void_of_its_hold(
    served: dict[str, str],
) -> None:
    """The document's OpenAPI links, followed as a client would: the order id of the
    authorization names the hold the linked operations act on."""
    import httpx

    document = httpx.get(served["url"] + "/openapi.json").json()
    by_id = {op["operationId"]: (path, method) for path, ops in document["paths"].items()
             for method, op in ops.items()}
    links = document["paths"]["/v1/checkouts/{order_id}/authorize"]["post"]["responses"][
        "200"]["links"]
    assert set(links) == {"capture", "void"}
    headers = {"Authorization": f"Bearer {served['key']}"}
    for name, link in links.items():
        bought = httpx.post(served["url"] + "/v1/cards", headers=headers, json={
            "order_id": f"links-buy-{name}", "market": "FR", "amount": 5000,
            "payment_method": "card", "buyer_id": "c1"}).json()
        order = f"links-{name}"
        held = httpx.post(f"{served['url']}/v1/checkouts/{order}/authorize", headers=headers,
                          json={"code": bought["code"], "market": "FR", "order_total": 3000})
        assert held.status_code == 200, held.text
        assert link["parameters"] == {"order_id": "$request.path.order_id"}
        path, method = by_id[link["operationId"]]
        followed = httpx.request(method, served["url"] + path.format(order_id=order),
                                 headers=headers)
        assert followed.status_code == 200, followed.text
        assert followed.json()["card_id"] == held.json()["card_id"]
