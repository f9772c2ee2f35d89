"""Customer service refunds returned goods from the console (R16-R18): a new card shown only by
its code's last 4, the rest to the other payment method; checked as `refund` checks it. In-process
over HTTP, on both stores."""

from __future__ import annotations

import re
from uuid import UUID

from starlette.testclient import TestClient

from application.commands import PurchaseCard, RedeemCard
from application.operators import Operators
from entrypoints.http.app import create_app
from infra.service import Service
from tests.conftest import FixedClock

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def test_r16_r17_support_refunds_returned_goods_as_a_new_card_shown_by_its_last_4(
    console_service: Service, clock: FixedClock,
) -> None:
    app = console_service.app
    operators = Operators(app)
    root = operators.add("root", "admin", None)["key"]
    sam = operators.add("sam", "support", operators.authenticate(root))["key"]
    card = app.purchase(PurchaseCard(
        order_id="ord-gift", market="FR", amount=5000, payment_method="card", buyer_id="cus-giver",
        buyer_email="giver@example.org",
    ))
    app.redeem(RedeemCard(
        code=card.code, market="FR", order_id="ord-paid", order_total=8000, customer_id="cus-payer",
        source="test",
    ))
    with TestClient(create_app(console_service)) as client:
        token = TOKEN.search(client.get("/console/sign-in").text)
        assert token is not None
        client.post("/console/sign-in", data={"csrf": token.group(1), "key": sam})
        form = client.get("/console/cards")
        csrf = TOKEN.search(form.text)
        assert csrf is not None
        fields = {"csrf": csrf.group(1), "order_id": "ord-paid", "amount": "20.00",
                  "received_on": clock.now.date().isoformat(), "customer_id": "cus-payer"}
        refused = client.post("/console/refunds", data={**fields, "customer_id": "cus-other"})
        assert refused.status_code == 409 and "customer_mismatch" in refused.text
        done = client.post("/console/refunds", data=fields)
    assert done.status_code == 200, done.text
    found = re.search(r'href="/console/cards/([0-9a-f-]{36})">…(\w{4})</a>', done.text)
    assert found is not None
    new = app.show(UUID(found.group(1)))
    assert (new.amount, new.code_last4) == (2000, found.group(2))
    assert str(new.card_id) != str(card.card_id)
