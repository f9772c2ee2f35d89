"""A request's API key is read from the store once: the Gate's read is the one the route's scope
check uses (with the key cache off, every read reaches the store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from application.apikeys import ApiKeys
from application.commands import PurchaseCard
from entrypoints.http.app import create_app
from infra.bootstrap import build
from infra.config import load_settings
from infra.service import Service
from tests.conftest import FixedClock


@pytest.fixture
def uncached(env_for: dict[str, str], clock: FixedClock) -> Iterator[Service]:
    service = build(load_settings({**env_for, "GIFTCARDS_API_KEY_CACHE_SECONDS": "0"}),
                    clock=clock)
    yield service
    service.close()


def test_each_request_reads_its_api_key_once(
    uncached: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ApiKeys(uncached.app)
    shop = keys.create(name="shop", scopes=["checkout"])["key"]
    orders = keys.create(name="orders", scopes=["orders"])["key"]
    code = uncached.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="b1", order_id="o-key-once",
    )).code
    reads: list[str] = []
    authenticate = ApiKeys.authenticate

    def counted(self: ApiKeys, key: str) -> object:
        reads.append(key)
        return authenticate(self, key)

    monkeypatch.setattr(ApiKeys, "authenticate", counted)
    with TestClient(create_app(uncached)) as client:
        def post(path: str, body: object, key: str) -> int:
            reads.clear()
            answer = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
            assert reads == [key], (path, answer.status_code)
            return answer.status_code

        assert post("/v1/cards/lookup", {"code": code, "market": "FR"}, shop) == 200
        assert post("/v1/ping", {"code": code, "market": "FR"}, shop) == 200
        assert post("/v1/checkouts/o-once/authorize",
                    {"code": code, "market": "FR", "order_total": 1000}, shop) == 200
        # The scope refused from the same read.
        assert post("/v1/ping", {"code": code, "market": "FR"}, orders) == 403
