"""E-mail addresses follow RFC 5322 addr-spec syntax on every path (HTTP, Kafka, CLI, delivery
retry, rectification): one check, in the domain; `zed.secret@@example` is refused everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from application.apikeys import ApiKeys
from application.privacy import Privacy
from domain.addresses import is_address
from domain.errors import DomainError
from entrypoints.http.app import create_app
from infra.bootstrap import Service
from tests.e2e.test_gdpr_cli import cli
from tests.unit.test_gdpr_privacy import register_operator
from tests.unit.test_hostile_input import ordered, refusal

BAD = "zed.secret@@example"


@pytest.mark.parametrize("text", [
    "a@b", "zed.secret@example.org", "o'brien+tag@mail.example.co.uk", '"john doe"@example.org',
    '"a\\"b"@example.org', "x@[192.0.2.1]", "!#$%&'*+-/=?^_`{|}~@example.org",
])
def test_addr_spec_accepts_what_rfc_5322_allows(text: str) -> None:
    assert is_address(text)


@pytest.mark.parametrize("text", [
    BAD, "a b@c", "@example.org", "zed@", "a..b@example.org", ".a@example.org", "a.@example.org",
    "a@example..org", "a@b.", "plain", "a@b@c", "a@exa mple.org", '"unclosed@example.org',
    "a@[x]y", "x" * 320 + "@example.org", "a\n@example.org",
])
def test_addr_spec_refuses_what_it_does_not(text: str) -> None:
    assert not is_address(text)


def test_a_bad_address_is_refused_over_http(memory_service: Service) -> None:
    key = ApiKeys(memory_service.app).create(name="orders", scopes=["orders"])["key"]
    body = {"order_id": "o-bad", "market": "FR", "amount": 5000, "payment_method": "card",
            "buyer_id": "c1", "buyer_email": BAD}
    with TestClient(create_app(memory_service)) as client:
        response = client.post("/v1/cards", content=orjson.dumps(body),
                               headers={"Authorization": f"Bearer {key}",
                                        "Content-Type": "application/json"})
        recipient = client.post("/v1/cards", content=orjson.dumps(
            {**body, "buyer_email": None, "recipient_email": "bob@@x"}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_input"
    assert "buyer_email" in response.json()["detail"] and BAD not in response.text
    assert recipient.status_code == 422 and "recipient_email" in recipient.json()["detail"]


def test_a_bad_address_is_refused_on_kafka() -> None:
    for message in (ordered(buyer={"customer_id": "c1", "email": BAD}),
                    ordered(buyer={"customer_id": "c1", "email": "zed..secret@example.org"}),
                    ordered(recipient={"email": BAD})):
        invalid = refusal(orjson.dumps(message))
        assert invalid.reason == "invalid_field"
        assert invalid.detail.startswith(("buyer.email", "recipient.email"))
        assert BAD not in invalid.detail


def test_a_bad_address_is_refused_on_the_cli(tmp_path: Path, env_for: dict[str, str]) -> None:
    env = {**env_for, "PATH": "/usr/bin:/bin"}
    rc, refused = cli(env, "purchase", "--market", "FR", "--amount", "50", "--payment-method",
                      "card", "--buyer-id", "cust-zed", "--buyer-email", BAD, "--order-id", "o-z")
    assert (rc, refused["error"]["code"]) == (2, "invalid_input")


def test_a_bad_address_is_refused_by_rectification(memory_service: Service, clock: Any) -> None:
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    privacy.open_request("cust-zed", "rectification", privacy.today(), "rect-zed")
    with pytest.raises(DomainError) as error:
        privacy.rectify("cust-zed", "email", BAD, "rect-zed", operator)
    assert error.value.code == "invalid_input"
