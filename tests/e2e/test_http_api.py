"""The HTTP API as a real `giftcards api` process (uvicorn) on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from application.apikeys import ApiKeys
from application.operators import Operators
from dev.services import free_port
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
HOLD_SECONDS = 6
OPERATOR = "cs-agent-7"  # in the register of operators (R21)
PROBLEM = "application/problem+json"



def giftcards(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([GIFTCARDS, "--json", *args], env=env, capture_output=True,
                          timeout=60, check=True)
    return dict(orjson.loads(done.stdout))


@dataclass
class Api:
    url: str
    keys: dict[str, str]  # scope name → bearer key
    key_ids: dict[str, str]
    log: Path
    env: dict[str, str]
    # One client: a new one per request costs more CPU than the request on a loaded machine.
    client: httpx.Client

    def post(self, path: str, body: Any = None, *, key: str = "checkout",
             headers: dict[str, str] | None = None, raw: bytes | None = None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        content = raw if raw is not None else orjson.dumps(body)
        return self.client.post(
            self.url + path, content=content,
            headers={"Content-Type": "application/json", **auth, **(headers or {})})

    def get(self, path: str, *, key: str = "support", operator: str | None = None
            ) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        named = {"X-Operator": operator} if operator is not None else {}
        return self.client.get(self.url + path, headers={**auth, **named})


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [GIFTCARDS, "api", "--port", str(port)], env=env,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the API did not come up: {log.read_text()}")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One API process per backend for the module; its keys created through the application."""
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'giftcards.sqlite3'}"
    else:
        from dev.services import drop_postgres_database, fresh_postgres_database

        url = fresh_postgres_database(request.getfixturevalue("postgres_server"))
        request.addfinalizer(lambda: drop_postgres_database(url))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    env = {**clean, "GIFTCARDS_DATA_DIR": str(tmp / "var"), "GIFTCARDS_DATABASE_URL": url,
           "GIFTCARDS_SECRET_KEY": SECRET, "GIFTCARDS_HOLD_SECONDS": str(HOLD_SECONDS)}
    service = build(load_settings(env))
    keys, ids = {}, {}
    for scope in ("checkout", "orders", "support", "audit", "guesser"):
        created = ApiKeys(service.app).create(
            name=scope, scopes=["checkout" if scope == "guesser" else scope])
        keys[scope], ids[scope] = created["key"], created["key_id"]
    # R21: operators' own keys (the key IS the operator): the bootstrap admin, then others.
    operators = Operators(service.app)
    root = operators.add("root", "admin", None)
    keys["root"], ids["root"] = root["key"], root["key_id"]
    admin = operators.authenticate(root["key"])
    for name, role in ((OPERATOR, "support"), ("aud-1", "auditor")):
        added = operators.add(name, role, admin)
        keys[f"{role}_operator"], ids[f"{role}_operator"] = added["key"], added["key_id"]
    service.close()
    log = tmp / "api.log"
    process, base = start_api(env, log)
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        yield Api(base, keys, ids, log, env, client)
    process.terminate()
    assert process.wait(timeout=30) == 0
    text = log.read_text()
    assert "Traceback" not in text
    for secret in keys.values():
        assert secret not in text


def buy(api: Api, order_id: str, amount: int = 5000) -> dict[str, Any]:
    response = api.post("/v1/cards", {"order_id": order_id, "market": "FR", "amount": amount,
                                      "payment_method": "card", "buyer_id": "c1"}, key="orders")
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert {"type", "title", "status", "code", "detail"} <= set(body)
    assert (body["status"], body["code"]) == (status, code)
    assert "Traceback" not in response.text
    return body


def authorize(api: Api, order_id: str, code: str, total: int = 3000, **more: Any) -> httpx.Response:
    return api.post(f"/v1/checkouts/{order_id}/authorize",
                    {"code": code, "market": "FR", "order_total": total, **more})


def test_r6_r8_r11_r19_r20_holds_lookup_and_refusals_over_http(api: Api) -> None:
    card = buy(api, "buy-1")
    code = card["code"]
    # Lookup: POST, so the code never lands in a URL.
    found = api.post("/v1/cards/lookup", {"code": code, "market": "FR"})
    assert found.status_code == 200
    assert found.json() | {} == {
        "card_id": card["card_id"], "status": "active", "balance": 5000, "currency": "EUR",
        "market": "FR", "expires_at": card["expires_at"], "code_last4": code[-4:],
    }
    # R6: a wrong-market code is answered exactly like an unknown one.
    wrong = api.post("/v1/cards/lookup", {"code": code, "market": "DE"})
    unknown = api.post("/v1/cards/lookup", {"code": "AAAAAA-BBBBBB-CCCCCC", "market": "FR"})
    assert_problem(wrong, 409, "unknown_code")
    assert wrong.json() == unknown.json()

    # simulate: the full decision, nothing stored.
    simulated = api.post("/v1/checkouts/sim-1/authorize?simulate=true",
                         {"code": code, "market": "FR", "order_total": 3000})
    assert simulated.status_code == 200 and simulated.json()["simulated"] is True
    assert api.post("/v1/cards/lookup", {"code": code, "market": "FR"}).json()["status"] == "active"

    # authorize → a second order and a cancellation are refused → capture (R11).
    held = authorize(api, "shop-1", code)
    assert held.status_code == 200, held.text
    assert (held.json()["status"], held.json()["amount"]) == ("held", 3000)
    assert authorize(api, "shop-1", code).json() == held.json()  # same order: same hold
    assert_problem(authorize(api, "shop-2", code), 409, "card_on_hold")
    assert_problem(api.post("/v1/cancellations", {"order_id": "buy-1", "code": code},
                            key="support"), 409, "card_on_hold")
    captured = api.post("/v1/checkouts/shop-1/capture")
    assert captured.status_code == 200
    assert {k: captured.json()[k] for k in ("applied", "forfeited", "remaining_to_pay")} == {
        "applied": 3000, "forfeited": 2000, "remaining_to_pay": 0}
    assert api.post("/v1/checkouts/shop-1/capture").json() == captured.json()
    assert_problem(authorize(api, "shop-3", code), 409, "already_redeemed")

    # authorize → void, then another order may use the card.
    other = buy(api, "buy-2")
    assert authorize(api, "shop-4", other["code"]).status_code == 200
    assert api.post("/v1/checkouts/shop-4/void").json()["status"] == "voided"
    assert api.post("/v1/checkouts/shop-4/void").status_code == 200
    assert_problem(api.post("/v1/checkouts/shop-4/capture"), 409, "hold_released")
    assert authorize(api, "shop-5", other["code"]).status_code == 200

    # Hold timeout: released lazily on access, with an event.
    time.sleep(HOLD_SECONDS + 0.5)
    assert api.post("/v1/cards/lookup",
                    {"code": other["code"], "market": "FR"}).json()["status"] == "active"
    assert authorize(api, "shop-6", other["code"]).status_code == 200
    history = api.get(f"/v1/cards/{other['card_id']}/history",
                      key="support_operator").json()["events"]
    released = [e for e in history if e["type"] == "HoldReleased"]
    assert [e["data"]["reason"] for e in released] == ["voided", "timed_out"]
    time.sleep(HOLD_SECONDS + 0.5)
    # The sweep `serve` runs releases a hold nobody touches.
    swept = api.post("/v1/holds/release-timed-out", {}, key="support")
    assert swept.json()["released"] == 1

    # R19/R20: the purchase order id AND the code, both checked.
    spare = buy(api, "buy-3")
    assert_problem(api.post("/v1/cancellations", {"order_id": "buy-3", "code": code},
                            key="support"), 409, "code_mismatch")
    mismatch = {"order_id": "buy-1", "code": spare["code"], "card_id": spare["card_id"]}
    assert_problem(api.post("/v1/cancellations", mismatch, key="support"), 409,
                   "order_mismatch")
    assert_problem(api.post("/v1/cancellations", {"order_id": "buy-3"}, key="support"),
                   422, "invalid_input")
    done = api.post("/v1/cancellations", {"order_id": "buy-3", "code": spare["code"]},
                    key="support")
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    assert_problem(authorize(api, "shop-7", spare["code"]), 409, "cancelled")

    # Other refusals, with the CLI's codes.
    fresh = buy(api, "buy-4")
    assert_problem(authorize(api, "shop-8", fresh["code"], promo_codes=["PROMO"]), 409,
                   "not_combinable")
    assert_problem(authorize(api, "shop-8", fresh["code"], contains_gift_cards=True), 409,
                   "gift_card_purchase_not_allowed")
    assert_problem(api.post("/v1/cards", {"order_id": "buy-5", "market": "FR", "amount": 1000,
                                          "payment_method": "card", "buyer_id": "c1"},
                            key="orders"), 409, "amount_out_of_range")
    assert_problem(api.post("/v1/cards", {"order_id": "buy-1", "market": "FR", "amount": 9000,
                                          "payment_method": "card", "buyer_id": "c1"},
                            key="orders"), 409, "order_id_conflict")
    assert_problem(api.post("/v1/cards", {"order_id": "buy-5", "market": "XX", "amount": 5000,
                                          "payment_method": "card", "buyer_id": "c1"},
                            key="orders"), 422, "unknown_market")
    assert_problem(api.post("/v1/checkouts/nothing/capture"), 404, "unknown_hold")
    assert_problem(api.post("/v1/refunds", {"order_id": "never", "amount": 100,
                                            "received_on": "2026-01-12"}, key="orders"),
                   409, "unknown_order")
    # R16 dates are the market's local dates (FR: Paris), not UTC's.
    paris_today = datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()
    refund = api.post("/v1/refunds?simulate=true", {"order_id": "shop-1", "amount": 1000,
                      "received_on": paris_today}, key="orders")
    assert refund.status_code == 200, refund.text
    assert refund.json()["simulated"] and refund.json()["new_card"]["code"] is None

    # Finance and audit reads (scope audit only).
    verified = api.get(f"/v1/audit/cards/{card['card_id']}/verify", key="audit")
    assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    liability = api.get("/v1/liability?market=FR", key="audit")
    assert liability.status_code == 200 and "markets" in liability.json()
    assert api.get("/v1/breakage", key="audit").status_code == 200
    assert api.get("/v1/fraud/alerts?rule=F1", key="auditor_operator").status_code == 200
    assert_problem(api.get("/v1/liability", key="support"), 403, "missing_scope")


def test_r21_reads_naming_customers_need_a_registered_operator_and_are_logged(
    api: Api,
) -> None:
    """The API's brief: "reading personal data needs an operator identity (R21), logged in the
    access log": a card's history names its buyer, an alert its customer."""
    card = buy(api, "r21-history")
    path = f"/v1/cards/{card['card_id']}/history"
    # A service's key is no operator, whatever X-Operator says; an operator's key is.
    assert_problem(api.get(path), 403, "operator_required")
    assert_problem(api.get(path, operator=OPERATOR), 403, "operator_required")
    assert_problem(api.get("/v1/fraud/alerts", key="audit"), 403, "operator_required")
    assert_problem(api.get(path, key="support_operator", operator="mallory"), 403,
                   "operator_mismatch")
    shown = api.get(path, key="support_operator", operator=OPERATOR)
    buyer = shown.json()["events"][0]["data"]["buyer_subject"]  # c1's store id (P2)
    assert shown.status_code == 200 and buyer.startswith("s-")
    log = giftcards({**api.env, "GIFTCARDS_OPERATOR_KEY": api.keys["root"]},
                    "gdpr", "access-log", "c1")["entries"]
    assert ("GET history", "history", OPERATOR) in {
        (e["command"], e["field"], e["operator"]) for e in log}


def test_r8_unknown_codes_are_limited_per_api_key_with_retry_after(api: Api) -> None:
    for n in range(10):
        assert_problem(api.post("/v1/cards/lookup", {"code": f"GUESS-{n}", "market": "FR"},
                                key="guesser"), 409, "unknown_code")
    card = buy(api, "buy-g")
    locked = api.post("/v1/cards/lookup", {"code": card["code"], "market": "FR"}, key="guesser")
    assert_problem(locked, 429, "too_many_attempts")
    assert 0 < int(locked.headers["Retry-After"]) <= 3600
    # Another key (another source) is not locked out.
    assert api.post("/v1/cards/lookup", {"code": card["code"], "market": "FR"}).status_code == 200


def test_idempotency_keys_replay_and_refuse_another_body(api: Api) -> None:
    body = {"order_id": "idem-1", "market": "FR", "amount": 5000, "payment_method": "card",
            "buyer_id": "c1"}
    first = api.post("/v1/cards", body, key="orders", headers={"Idempotency-Key": "k-1"})
    again = api.post("/v1/cards", body, key="orders", headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["code"] and again.json()["code"] is None  # a code is shown once
    assert {**first.json(), "code": None, "replayed": True} == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/v1/cards", {**body, "amount": 6000}, key="orders",
                     headers={"Idempotency-Key": "k-1"})
    assert_problem(other, 422, "idempotency_key_reused")
    refused = {**body, "order_id": "idem-2", "amount": 1}
    r1 = api.post("/v1/cards", refused, key="orders", headers={"Idempotency-Key": "k-2"})
    r2 = api.post("/v1/cards", refused, key="orders", headers={"Idempotency-Key": "k-2"})
    assert (r1.status_code, r1.json()) == (r2.status_code, r2.json())


def test_access_scopes_and_hostile_input_are_problem_documents(api: Api) -> None:
    lookup = {"code": "AAAAAA-BBBBBB-CCCCCC", "market": "FR"}
    assert_problem(api.post("/v1/cards/lookup", lookup, key=""), 401, "unauthenticated")
    assert_problem(api.post("/v1/cards/lookup", lookup,
                            headers={"Authorization": "Bearer gck_wrong"}), 401, "unauthenticated")
    assert_problem(api.post("/v1/cards/lookup", lookup, key="audit"), 403, "missing_scope")
    assert_problem(api.get("/v1/nowhere"), 404, "not_found")
    assert_problem(api.get("/v1/checkouts/o-1/capture"), 405, "method_not_allowed")
    card = buy(api, "hostile-1")
    before = api.get(f"/v1/cards/{card['card_id']}/history", key="support_operator").json()
    hostile: list[tuple[bytes, int, str]] = [
        (b"x" * 100_000, 413, "too_large"),
        (b"[" * 5000 + b"]" * 5000, 400, "too_deep"),
        (b'{"code": "\xff\xfe", "market": "FR", "order_total": 100}', 400, "not_utf8"),
        (b'{"code": "' + card["code"].encode() + b'", "market": "FR", "order_total": 10.5}',
         422, "invalid_input"),
        (b'{"code": "' + card["code"].encode() + b'", "market": "FR", "order_total": 100.0}',
         422, "invalid_input"),
        (b'{"code": "' + card["code"].encode() + b'", "market": "FR", "order_total": "100"}',
         422, "invalid_input"),
        (b'{"code": "' + card["code"].encode() + b'", "market": "FR", "order_total": 100,'
         b' "extra": 1}', 422, "invalid_input"),
        (b"not json", 422, "invalid_input"),
        # The second value would win in a parser: refused as on Kafka, by the same detector.
        (b'{"code": "' + card["code"].encode() + b'", "market": "FR", "order_total": 100,'
         b' "order_total": 999999}', 400, "duplicate_key"),
        (b'{"code": "' + card["code"].encode() + b'", "market": "FR", "order_total": 100,'
         b' "promo_codes": [], "c\\u006fde": "X"}', 400, "duplicate_key"),
    ]
    for raw, status, code in hostile:
        response = api.post("/v1/checkouts/hostile-order/authorize", raw=raw)
        body = assert_problem(response, status, code)
        if code == "duplicate_key":
            assert body["detail"] in ("order_total: given twice", "code: given twice"), body
        assert card["code"] not in response.text, body  # never echoed
    after = api.get(f"/v1/cards/{card['card_id']}/history", key="support_operator").json()
    assert after == before  # nothing written
    assert "openapi" in httpx.get(api.url + "/openapi.json").json()
    # The Kafka contract (AsyncAPI) is served too, the same text as the committed document.
    served = httpx.get(api.url + "/asyncapi.yaml")
    assert served.status_code == 200 and served.headers["content-type"] == "application/yaml"
    assert served.text == (ROOT / "asyncapi.yaml").read_text(encoding="utf-8")
    docs = httpx.get(api.url + "/docs").text
    assert "/v1/cards/lookup" in docs and "http" not in docs.split("<body>")[1].replace(
        "/openapi.json", "")
    metrics = httpx.get(api.url + "/metrics").text
    assert "giftcards_http_requests_total" in metrics and "giftcards_refusals_total" in metrics


def test_a_key_revoked_by_another_process_is_refused_within_the_cache_time(api: Api) -> None:
    """The API reuses what it read of a key for GIFTCARDS_API_KEY_CACHE_SECONDS (default 1 s):
    a key revoked by the CLI (another process) is refused within that time, not later."""
    created = giftcards(api.env, "api-key", "create", "--name", "till-7", "--scope", "checkout")
    headers = {"Authorization": f"Bearer {created['key']}", "Content-Type": "application/json"}
    lookup = orjson.dumps({"code": buy(api, "revoke-1")["code"], "market": "FR"})
    first = api.client.post(api.url + "/v1/cards/lookup", content=lookup, headers=headers)
    assert first.status_code == 200, first.text  # authenticated (and read into the cache)
    giftcards(api.env, "api-key", "revoke", created["key_id"])
    revoked_at = time.monotonic()
    while (answer := api.client.post(api.url + "/v1/cards/lookup", content=lookup,
                                     headers=headers)).status_code != 401:
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - revoked_at < 1.0 + 0.5, "still accepted after the cache time"
        time.sleep(0.05)


def test_fifty_concurrent_authorizations_of_one_card_hold_it_once(api: Api) -> None:
    card = buy(api, "race-1")

    def one(n: int) -> int:
        return authorize(api, f"race-order-{n}", card["code"]).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(one, range(50)))
    # Within one hold's time, or a second hold after a time-out would be right.
    assert time.monotonic() - started < HOLD_SECONDS
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == 49
    history = api.get(f"/v1/cards/{card['card_id']}/history",
                      key="support_operator").json()["events"]
    assert [e["type"] for e in history].count("Held") == 1
    # Group commit was at work: some transaction carried several of these requests.
    assert max(batch_sizes(api)) > 1


def batch_sizes(api: Api) -> list[float]:
    """The upper bounds of the batch-size buckets /metrics has seen filled."""
    sizes, seen = [], 0.0
    for line in httpx.get(api.url + "/metrics").text.splitlines():
        if line.startswith("giftcards_commit_batch_commands_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            count = float(line.rsplit(" ", 1)[1])
            if count > seen and bound != "+Inf":
                sizes.append(float(bound))
            seen = count
    return sizes
