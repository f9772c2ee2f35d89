"""`POST /v1/ping`: a key checked as the checkout routes check it, a constant answer (what
the framework and authentication cost, without our work: the lookup's baseline)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from application.apikeys import ApiKeys
from entrypoints.http.app import create_app
from infra.bootstrap import build
from infra.config import load_settings

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
LOOKUP = b'{"code": "ABCD-EFGH-JKLM-NPQR", "market": "FR"}'


def test_ping_answers_a_constant_to_a_checkout_key_only(tmp_path: Path) -> None:
    env = {"GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
           "GIFTCARDS_SECRET_KEY": SECRET, "GIFTCARDS_DATA_DIR": str(tmp_path / "var")}
    service = build(load_settings(env))
    try:
        keys = ApiKeys(service.app)
        shop = keys.create(name="shop", scopes=["checkout"])["key"]
        orders = keys.create(name="orders", scopes=["orders"])["key"]
        with TestClient(create_app(service)) as client:
            def ping(key: str | None, body: bytes = LOOKUP) -> tuple[int, object]:
                headers = {"Content-Type": "application/json"}
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                answer = client.post("/v1/ping", content=body, headers=headers)
                return answer.status_code, answer.json()

            assert ping(shop) == (200, {"status": "ok"})
            assert ping(shop) == (200, {"status": "ok"})  # the cached key alike
            assert ping(None)[0] == 401
            assert ping("not-a-key")[0] == 401
            assert ping(orders)[0] == 403
            assert ping(shop, b"") == (200, {"status": "ok"})  # no request: the key alone
            assert ping(shop, b'{"market": "FR"}')[0] == 422  # checked as a lookup's
    finally:
        service.close()
