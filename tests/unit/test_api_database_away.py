"""The HTTP API while the database is away (a restart, a failover): 503 with Retry-After,
never a 500."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
from starlette.testclient import TestClient

from application.apikeys import ApiKeys
from entrypoints.http.app import create_app
from infra.bootstrap import Service
from infra.transient import DATABASE_RETRY_AFTER_S


def test_a_connection_lost_at_failover_answers_503_with_retry_after(
    memory_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ApiKeys(memory_service.app).create(name="orders", scopes=["orders"])["key"]

    def lost(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(memory_service.app, "purchase", lost)
    body = {"order_id": "o-1", "market": "FR", "amount": 5000, "payment_method": "card",
            "buyer_id": "shop"}
    with TestClient(create_app(memory_service), raise_server_exceptions=False) as client:
        answer = client.post("/v1/cards", content=orjson.dumps(body),
                             headers={"Authorization": f"Bearer {key}",
                                      "Content-Type": "application/json"})
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "database_unavailable"
    assert answer.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
