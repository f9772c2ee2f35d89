"""An access request answered from the console's register: everything held about the subject
as a JSON download (as `gdpr export`), access-logged as the operator; never without the form's
CSRF token. In-process over HTTP, on both stores."""

from __future__ import annotations

import re

import orjson
from starlette.testclient import TestClient

from application.commands import PurchaseCard
from application.operators import Operators
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from entrypoints.http.app import create_app
from infra.service import Service
from tests.conftest import FixedClock

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def test_r21_an_access_request_is_exported_from_the_register_and_logged(
    console_service: Service, clock: FixedClock,
) -> None:
    operators = Operators(console_service.app)
    root = operators.add("root", "admin", None)["key"]
    sam = operators.add("sam", "support", operators.authenticate(root))["key"]
    console_service.app.purchase(PurchaseCard(
        order_id="ord-export", market="FR", amount=5000, payment_method="card",
        buyer_id="cus-export", buyer_email="export@example.org",
    ))
    Privacy(console_service).open_request("cus-export", "access", clock.now.date(), "req-acc-1")
    with TestClient(create_app(console_service)) as client:
        form = client.get("/console/sign-in")
        token = TOKEN.search(form.text)
        assert token is not None
        client.post("/console/sign-in", data={"csrf": token.group(1), "key": sam})
        page = client.get("/console/requests")
        assert page.status_code == 200 and "req-acc-1" in page.text
        csrf = TOKEN.search(page.text)
        assert csrf is not None
        refused = client.post("/console/requests/req-acc-1/export", data={})
        assert refused.status_code == 403 and "export@example.org" not in refused.text
        done = client.post("/console/requests/req-acc-1/export", data={"csrf": csrf.group(1)})
    assert done.status_code == 200
    assert done.headers["content-disposition"] == 'attachment; filename="export-req-acc-1.json"'
    assert done.headers["cache-control"] == "no-store"
    assert "export@example.org" in done.text
    assert orjson.loads(done.content)
    reader = PiiReader(console_service, "root", "test: who read", "test")
    entries = Privacy(console_service).access_log("cus-export", reader)["entries"]
    assert ("sam", "access request") in {(e["operator"], e["purpose"]) for e in entries}
