"""Over HTTP, against a real `giftcards api` process on both stores: ids are ids (P5), the
Idempotency-Key stores only requests that ran and marks its replays, one order's hold cannot
change under it, and every read tells a card's status alike."""
# ruff: noqa: F811  (the `api` fixture is imported, and named by the tests that use it)

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx

from application.apikeys import ApiKeys
from domain.markets import Markets
from entrypoints.http.replies import HttpReply
from infra.bootstrap import build
from infra.config import load_settings
from tests.e2e.test_http_api import Api, api, assert_problem, buy  # noqa: F401


def new_key(api: Api, scope: str) -> tuple[str, str]:
    service = build(load_settings(api.env))
    try:
        made = ApiKeys(service.app).create(name=f"k-{uuid4().hex[:8]}", scopes=[scope])
        return str(made["key"]), str(made["key_id"])
    finally:
        service.close()


def post(api: Api, key: str, path: str, body: Any, idem: str | None = None,
         raw: bytes | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    if raw is not None:
        return api.client.post(api.url + path, content=raw, headers=headers)
    return api.client.post(api.url + path, json=body, headers=headers)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:10]}"


def purchase_body(order: str, **more: Any) -> dict[str, Any]:
    return {"order_id": order, "market": "FR", "amount": 5000, "payment_method": "card",
            "buyer_id": "c1", **more}


def test_p5_nul_in_every_http_id_field_is_422_invalid_id_and_nothing_answers_500_after(
    api: Api,
) -> None:
    orders, checkout = api.keys["orders"], api.keys["checkout"]
    card = buy(api, unique("nul-buy"))
    nul = "c\u0000x"
    refused = [
        post(api, orders, "/v1/cards", purchase_body(unique("o"), buyer_id=nul)),
        post(api, orders, "/v1/cards", purchase_body(nul)),
        post(api, checkout, "/v1/cards/lookup",
             {"code": card["code"], "market": "FR", "customer_id": nul}),
        post(api, checkout, f"/v1/checkouts/{unique('o')}/authorize",
             {"code": card["code"], "market": "FR", "order_total": 100, "customer_id": nul}),
        post(api, checkout, f"/v1/checkouts/{unique('o')}/authorize?simulate=true",
             {"code": card["code"], "market": "FR", "order_total": 100, "customer_id": nul}),
        post(api, checkout, "/v1/checkouts/o%00x/authorize",
             {"code": card["code"], "market": "FR", "order_total": 100}),
        post(api, checkout, "/v1/checkouts/o%00x/capture", None),
        post(api, orders, "/v1/refunds", {"order_id": "o", "amount": 100,
                                          "received_on": "2026-01-12", "request_id": nul}),
        post(api, orders, "/v1/cards", purchase_body(unique("o"), buyer_id="z@example.org")),
        post(api, orders, "/v1/cards", purchase_body("o" * 101)),
    ]
    for response in refused:
        assert_problem(response, 422, "invalid_id")
    history = api.get(f"/v1/cards/{card['card_id']}/history", key="support_operator")
    assert history.status_code == 200
    assert api.get(f"/v1/cards/{card['card_id']}").status_code == 200


def test_a_refusal_that_depends_on_time_is_not_stored_under_an_idempotency_key(
    api: Api,
) -> None:
    checkout = api.keys["checkout"]
    card = buy(api, unique("idem-hold"))
    first, second = unique("shop"), unique("shop")
    assert post(api, checkout, f"/v1/checkouts/{first}/authorize",
                {"code": card["code"], "market": "FR", "order_total": 1000}).status_code == 200
    body = {"code": card["code"], "market": "FR", "order_total": 1000}
    idem = unique("k")
    assert_problem(post(api, checkout, f"/v1/checkouts/{second}/authorize", body, idem),
                   409, "card_on_hold")
    assert post(api, checkout, f"/v1/checkouts/{first}/void", None).status_code == 200
    retried = post(api, checkout, f"/v1/checkouts/{second}/authorize", body, idem)
    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replayed" not in retried.headers


def test_r8_a_429_under_an_idempotency_key_is_not_stored(api: Api) -> None:
    key, key_id = new_key(api, "checkout")
    for n in range(10):
        post(api, key, "/v1/cards/lookup", {"code": f"RANDOM-{n}", "market": "FR"})
    idem = unique("k")
    locked = post(api, key, f"/v1/checkouts/{unique('o')}/authorize",
                  {"code": "RANDOM-X", "market": "FR", "order_total": 100}, idem)
    assert_problem(locked, 429, "too_many_attempts")
    service = build(load_settings(api.env))
    try:
        from uuid import UUID

        stored = service.app.recorder.select_events(HttpReply.id_for(UUID(key_id), idem))
    finally:
        service.close()
    assert stored == []  # retried after the window, the request runs afresh


def test_idempotency_keys_are_per_api_key_bodies_compare_as_json_and_replays_are_marked(
    api: Api,
) -> None:
    key_a, _ = new_key(api, "orders")
    key_b, _ = new_key(api, "orders")
    idem, order = unique("k"), unique("idem-json")
    body = purchase_body(order, buyer_email="alice@example.org")
    first = post(api, key_a, "/v1/cards", body, idem)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert first.json()["code"] and first.json()["replayed"] is False
    delivery = first.json()["code_delivery"]
    assert delivery["delivery_id"] and (delivery["by"], delivery["status"]) == ("email", "pending")
    # The same JSON, keys in another order and other spacing: a replay, marked as one.
    reordered = b"{ " + b", ".join(
        f'"{k}": "{v}"'.encode() if isinstance(v, str) else f'"{k}": {v}'.encode()
        for k, v in reversed(list(body.items()))) + b" }"
    again = post(api, key_a, "/v1/cards", None, idem, raw=reordered)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == {**first.json(), "code": None, "replayed": True}
    assert again.json()["code_delivery"]["delivery_id"] == delivery["delivery_id"]
    # Another client's key of the same value is another key.
    other = post(api, key_b, "/v1/cards", purchase_body(unique("idem-b")), idem)
    assert other.status_code == 201 and "Idempotent-Replayed" not in other.headers
    # Without a key, the order id replays the purchase: no code, but where it went.
    natural = post(api, key_a, "/v1/cards", body)
    assert natural.status_code == 201 and natural.json()["code"] is None
    assert natural.json()["code_delivery"]["delivery_id"] == delivery["delivery_id"]


def test_a_refund_retried_under_its_idempotency_key_is_a_replay(api: Api) -> None:
    card = buy(api, unique("refund-buy"))
    order = unique("refund-shop")
    checkout, orders = api.keys["checkout"], api.keys["orders"]
    assert post(api, checkout, f"/v1/checkouts/{order}/authorize",
                {"code": card["code"], "market": "FR", "order_total": 3000}).status_code == 200
    assert post(api, checkout, f"/v1/checkouts/{order}/capture", None).status_code == 200
    # The goods' day is a local date on the platform: the UTC date of the purchase is the
    # day before the payment's local date late in the evening (UTC) in Paris.
    received_on = Markets.load().get("FR").local_date(datetime.now(UTC)).isoformat()
    body = {"order_id": order, "amount": 1000, "received_on": received_on,
            "request_id": unique("r")}
    idem = unique("k")
    first = post(api, orders, "/v1/refunds", body, idem)
    assert first.status_code == 201, first.text
    again = post(api, orders, "/v1/refunds", body, idem)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")


def test_one_order_cannot_be_authorized_again_with_another_total_or_card_and_reads_agree(
    api: Api,
) -> None:
    checkout = api.keys["checkout"]
    card, other = buy(api, unique("mm-buy")), buy(api, unique("mm-buy"))
    order = unique("mm-shop")
    path = f"/v1/checkouts/{order}/authorize"
    held = post(api, checkout, path, {"code": card["code"], "market": "FR", "order_total": 1000})
    assert held.status_code == 200
    assert_problem(post(api, checkout, path, {"code": card["code"], "market": "FR",
                                              "order_total": 1500}), 409, "order_mismatch")
    assert_problem(post(api, checkout, path, {"code": other["code"], "market": "FR",
                                              "order_total": 1000}), 409, "order_mismatch")
    # Every read tells the same status.
    lookup = post(api, checkout, "/v1/cards/lookup", {"code": card["code"], "market": "FR"})
    assert lookup.json()["status"] == "held"
    assert api.get(f"/v1/cards/{card['card_id']}").json()["status"] == "held"
    hold = api.get(f"/v1/holds/{order}", key="checkout")
    assert hold.status_code == 200 and hold.json() == held.json()
    assert post(api, checkout, f"/v1/checkouts/{order}/void", None).status_code == 200
    assert api.get(f"/v1/holds/{order}", key="checkout").json()["status"] == "released"
    assert api.get(f"/v1/cards/{card['card_id']}").json()["status"] == "active"
    assert_problem(api.get(f"/v1/holds/{unique('none')}", key="checkout"), 404, "unknown_hold")
