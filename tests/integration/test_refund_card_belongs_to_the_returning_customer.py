"""R17: a refund card belongs to the customer of the refunded order. The refund request (Kafka,
HTTP, CLI) names that customer and their e-mail; the card, its e-mails and its export line are
theirs; it is never mailed to the original card's buyer, even when no e-mail is given."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest

from application.apikeys import ApiKeys
from application.commands import PurchaseCard, RedeemCard, RefundOrder
from application.delivery import Deliveries
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from infra.bootstrap import Service
from infra.kafka.topics import Topics
from tests.conftest import FixedClock
from tests.e2e.test_cli import cli
from tests.e2e.test_http_api import start_api
from tests.integration.kafka_helpers import TopicReader, produce, running_consumer
from tests.integration.test_code_delivery import statuses, worker
from tests.mail.inbox import SmtpServer, code_in, message_parts, smtp_server, text_of
from tests.operator_register import enrol

__all__ = ["smtp_server"]  # the fixture
CAROL = "carol@example.org"  # bought the card, a gift for Alice
ALICE = "alice@example.org"  # paid order O-9100-R2 with it, then returned the goods


def gift_spent_by_alice(service: Service) -> str:
    """Carol's gift card, spent by Alice: its id."""
    card = service.app.purchase(PurchaseCard(
        market="FR", amount=25000, payment_method="card", buyer_id="cust-carol", buyer_email=CAROL,
        buyer_name="Carol", order_id="o-gift",
    ))
    service.app.redeem(RedeemCard(
        code=card.code, market="FR", order_id="O-9100-R2", order_total=25000,
        customer_id="cust-alice", source="test",
    ))
    return str(card.card_id)


def deliver_all(service: Service, smtp: SmtpServer) -> None:
    the_worker = worker(service, smtp)
    while the_worker.drain():
        pass


def per_recipient(smtp: SmtpServer) -> Counter[tuple[str, str]]:
    """(recipient, card id) → how many e-mails."""
    return Counter((str(m["To"]), message_parts(m)[0]) for m in smtp.received())


def exports(service: Service) -> tuple[dict[str, Any], dict[str, Any]]:
    privacy = Privacy(service)
    enrol(service, "dpo-1", "dpo")
    reader = PiiReader(service, "dpo-1", "access request", "gdpr export")
    return privacy.export(["cust-alice"], reader), privacy.export(["cust-carol"], reader)


def assert_alices_only(service: Service, smtp: SmtpServer, gift: str, refund_card: str) -> None:
    """Carol got her own two e-mails, Alice the refund card's two, nobody anything else."""
    assert per_recipient(smtp) == Counter({(CAROL, gift): 2, (ALICE, refund_card): 2})
    card_mail = next(m for m in smtp.received()
                     if message_parts(m)[::2] == (refund_card, "card"))
    assert "O-9100-R2" in text_of(card_mail, "plain")
    alice, carol = exports(service)
    assert [(c["card_id"], c["buyer_email"]) for c in alice["refund_cards"]] == [
        (refund_card, ALICE)]
    assert carol["refund_cards"] == []
    assert refund_card not in orjson.dumps(carol).decode()
    assert "O-9100-R2" not in orjson.dumps(carol).decode()
    # The e-mailed code spends the refund card.
    spent = service.app.redeem(RedeemCard(
        code=code_in(card_mail), market="FR", order_id="o-next", order_total=100,
        customer_id="cust-alice", source="test",
    ))
    assert str(spent.card_id) == refund_card


def test_r17_refund_card_is_mailed_to_the_returning_customer_and_in_her_export_only(
    service: Service, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    gift = gift_spent_by_alice(service)
    refund = service.app.refund(RefundOrder(
        order_id="O-9100-R2", returned_amount=15000, received_on=clock().date(),
        customer_id="cust-alice", customer_email=ALICE,
    ))
    deliver_all(service, smtp_server)
    assert_alices_only(service, smtp_server, gift, str(refund.new_card.card_id))


def test_r17_a_refund_without_the_customers_email_waits_for_customer_service(
    service: Service, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    gift = gift_spent_by_alice(service)
    refund = service.app.refund(RefundOrder(
        order_id="O-9100-R2", returned_amount=15000, received_on=clock().date(),
    ))  # an older request: no customer
    new = str(refund.new_card.card_id)
    deliver_all(service, smtp_server)
    assert per_recipient(smtp_server) == Counter({(CAROL, gift): 2})
    failed = Deliveries(service).failed()
    assert [(str(f.card_id), f.reason) for f in failed] == [(new, "no_address")]
    # Customer service gets Alice's address from her and sends the card there.
    enrol(service, "agent-1", "support")
    Deliveries(service).retry(UUID(new), operator="agent-1", buyer_email=ALICE)
    deliver_all(service, smtp_server)
    assert per_recipient(smtp_server) == Counter({(CAROL, gift): 2, (ALICE, new): 2})
    assert statuses(service)[new] == "delivered"


def test_r17_a_refund_naming_another_customer_than_who_paid_is_refused(
    service: Service, clock: FixedClock
) -> None:
    gift_spent_by_alice(service)
    with pytest.raises(Exception, match="another customer") as refused:
        service.app.refund(RefundOrder(
            order_id="O-9100-R2", returned_amount=15000, received_on=clock().date(),
            customer_id="cust-mallory", customer_email="mallory@evil.example",
        ))
    assert getattr(refused.value, "code", None) == "customer_mismatch"


def test_r17_cli_refund_names_the_customer_and_her_email(
    env_for: dict[str, str], service: Service, smtp_server: SmtpServer
) -> None:
    gift = gift_spent_by_alice(service)
    rc, refund, _ = cli(env_for, "2026-01-12T11:00:00Z", "refund", "--order-id", "O-9100-R2",
                        "--amount", "150", "--received-on", "2026-01-12", "--customer-id",
                        "cust-alice", "--customer-email", ALICE)  # fmt: skip
    assert rc == 0, refund
    deliver_all(service, smtp_server)
    assert_alices_only(service, smtp_server, gift, refund["new_card"]["card_id"])


def test_r17_http_refund_names_the_customer_and_her_email(
    env_for: dict[str, str], service: Service, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    gift = gift_spent_by_alice(service)
    key = ApiKeys(service.app).create(name="orders", scopes=["orders"])["key"]
    process, url = start_api({**env_for, "GIFTCARDS_NOW": "2026-01-12T11:00:00Z"},
                             tmp_path / "api.log")
    try:
        response = httpx.post(
            url + "/v1/refunds", timeout=30, headers={"Authorization": f"Bearer {key}"},
            json={"order_id": "O-9100-R2", "amount": 15000, "received_on": "2026-01-12",
                  "customer_id": "cust-alice", "customer_email": ALICE},
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert response.status_code == 201, response.text
    deliver_all(service, smtp_server)
    new_card = response.json()["new_card"]["card_id"]
    assert_alices_only(service, smtp_server, gift, new_card)


def test_r17_kafka_refund_names_the_customer_and_her_email(
    service: Service, env_for: dict[str, str], clock: FixedClock, kafka_bootstrap: str,
    topics: Topics, smtp_server: SmtpServer,
) -> None:
    gift = gift_spent_by_alice(service)
    returned = {"message_id": "m-ret", "type": "OrderItemsReturned",
                "occurred_at": "2026-01-12T09:00:00Z", "order_id": "O-9100-R2", "market": "FR",
                "returned_amount": 15000, "received_on": "2026-01-12",
                "customer": {"customer_id": "cust-alice", "email": ALICE}}  # fmt: skip
    results = TopicReader(kafka_bootstrap, topics.results)
    try:
        with running_consumer(env_for, clock, kafka_bootstrap, topics, smtp_server):
            produce(kafka_bootstrap, topics.checkout, [orjson.dumps(returned)])
            done = results.until(1)[0]
            smtp_server.wait_for(4)
    finally:
        results.close()
    assert done["status"] == "accepted", done
    assert_alices_only(service, smtp_server, gift, done["new_card_id"])
