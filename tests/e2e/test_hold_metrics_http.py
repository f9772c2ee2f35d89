"""Over HTTP, against a real `giftcards api` process on both stores: /metrics counts each hold
operation that succeeded (authorize, capture, void), and neither a dry run nor a refusal."""
# ruff: noqa: F811  (the `api` fixture is imported, and named by the tests that use it)

from __future__ import annotations

import re
from uuid import uuid4

import httpx

from tests.e2e.test_http_api import Api, api, buy  # noqa: F401


def holds_counted(api: Api) -> dict[str, float]:
    text = httpx.get(api.url + "/metrics").text
    return {operation: float(value) for operation, value in re.findall(
        r'^giftcards_holds_total\{operation="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE)}


def test_each_successful_hold_operation_is_counted_once(api: Api) -> None:
    before = holds_counted(api)
    captured, voided = (f"{name}-{uuid4().hex[:10]}" for name in ("captured", "voided"))
    for order in (captured, voided):
        card = buy(api, f"buy-{order}")
        body = {"code": card["code"], "market": "FR", "order_total": 100}
        dry = api.post(f"/v1/checkouts/{order}/authorize?simulate=true", body)
        assert dry.status_code == 200 and dry.json()["simulated"] is True, dry.text
        held = api.post(f"/v1/checkouts/{order}/authorize", body)
        assert held.status_code == 200, held.text
    assert api.post(f"/v1/checkouts/{captured}/capture").status_code == 200
    assert api.post(f"/v1/checkouts/{voided}/void").status_code == 200
    refused = api.post(f"/v1/checkouts/never-held-{uuid4().hex[:8]}/capture")
    assert refused.status_code >= 400, refused.text

    after = holds_counted(api)
    counted = {op: after.get(op, 0.0) - before.get(op, 0.0) for op in ("authorize", "capture",
                                                                        "void")}
    assert counted == {"authorize": 2.0, "capture": 1.0, "void": 1.0}
