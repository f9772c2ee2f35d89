"""Restriction and rectification requests carried out from the console's register by the data
protection officer, as `gdpr restrict|rectify --request-id`; customer service may not restrict.
In-process over HTTP, on both stores."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from application.commands import PurchaseCard
from application.operators import Operators
from application.privacy import Privacy
from entrypoints.http.app import create_app
from infra.service import Service
from tests.conftest import FixedClock

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def signed_in(client: TestClient, key: str) -> str:
    client.cookies.clear()
    token = TOKEN.search(client.get("/console/sign-in").text)
    assert token is not None
    client.post("/console/sign-in", data={"csrf": token.group(1), "key": key})
    page = client.get("/console/requests")
    csrf = TOKEN.search(page.text)
    assert csrf is not None
    return csrf.group(1)


def status(service: Service, request_id: str) -> Any:
    return Privacy(service).request(request_id)["status"]


def test_p4_the_dpo_restricts_and_rectifies_from_the_register(
    console_service: Service, clock: FixedClock,
) -> None:
    app = console_service.app
    operators = Operators(app)
    root = operators.add("root", "admin", None)["key"]
    admin = operators.authenticate(root)
    sam = operators.add("sam", "support", admin)["key"]
    dora = operators.add("dora", "dpo", admin)["key"]
    app.purchase(PurchaseCard(
        order_id="ord-rights", market="FR", amount=5000, payment_method="card",
        buyer_id="cus-rights", buyer_email="old@example.org",
    ))
    privacy = Privacy(console_service)
    today = clock.now.date()
    privacy.open_request("cus-rights", "restriction", today, "req-restrict")
    privacy.open_request("cus-rights", "rectification", today, "req-rectify")
    with TestClient(create_app(console_service)) as client:
        csrf = signed_in(client, sam)
        refused = client.post("/console/requests/req-restrict/restrict", data={"csrf": csrf})
        assert refused.status_code == 403
        assert status(console_service, "req-restrict") == "open"
        csrf = signed_in(client, dora)
        assert client.post("/console/requests/req-restrict/restrict",
                           data={}).status_code == 403  # no CSRF token
        done = client.post("/console/requests/req-restrict/restrict", data={"csrf": csrf},
                           follow_redirects=False)
        assert done.status_code == 303, done.text
        done = client.post("/console/requests/req-rectify/rectify", follow_redirects=False,
                           data={"csrf": csrf, "field": "email", "value": "new@example.org"})
        assert done.status_code == 303, done.text
    assert status(console_service, "req-restrict") == "closed"
    assert status(console_service, "req-rectify") == "closed"
