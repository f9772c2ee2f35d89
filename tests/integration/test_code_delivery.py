"""R7: codes e-mailed through a real SMTP server (aiosmtpd in a subprocess) from the
sealed outbox: both e-mails, locale formats, escaping, retries, failures, erasure, no leaks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from application.commands import PurchaseCard, RedeemCard, RefundOrder
from application.delivery import Deliveries
from application.operators import Operators, break_glass
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from composition.bootstrap import Service, build_delivery_worker, build_projector
from consumers.delivery import DeliveryWorker
from domain.delivery import CodeDelivery
from infra.mail.transport import SmtpTransport
from projections.sources import sync_store
from tests.conftest import FixedClock
from tests.e2e.test_cli import cli
from tests.integration.test_gdpr_erasure import store_bytes
from tests.mail.inbox import SmtpServer, code_in, message_parts, smtp_server, text_of
from tests.operator_register import enrol

__all__ = ["smtp_server"]  # the fixture

HOSTILE = '<script>alert("x")</script><b>Joyeux</b> & co'


def buy(service: Service, order_id: str, email: str = "alice@example.org", **more: Any) -> str:
    card = service.app.purchase(PurchaseCard(
        market=more.pop("market", "FR"), amount=more.pop("amount", 5000), payment_method="card",
        buyer_id=more.pop("buyer_id", "cust-alice"), buyer_email=email, order_id=order_id, **more,
    ))
    return str(card.card_id)


def worker(service: Service, smtp: SmtpServer) -> DeliveryWorker:
    return build_delivery_worker(service, SmtpTransport(smtp.url))


@contextmanager
def running(service: Service, smtp: SmtpServer) -> Iterator[DeliveryWorker]:
    """The worker in a thread (its own connections on PostgreSQL; SQLite allows the share)."""
    stop = threading.Event()
    the_worker = worker(service, smtp)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            the_worker.run(stop, idle_s=0.05)
        except BaseException as exc:  # surfaced below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield the_worker
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failure, failure


def statuses(service: Service) -> dict[str, str]:
    topics = [get_topic(CodeDelivery.CodeSealed)]
    found = {}
    for n in service.app.recorder.select_notifications(1, 10_000, topics=topics):
        delivery = service.app.repository.get(n.originator_id)
        found[str(delivery.card_id)] = delivery.status
    return found


def live_code_keys(service: Service) -> int:
    rows = service.db.execute(
        "SELECT count(*) FROM subject_keys WHERE subject_id LIKE ? AND wrapped_key IS NOT NULL",
        ("card-code:%",),
    )
    return int(rows[0][0])


def mails_of(received: list[EmailMessage], card_id: str) -> dict[str, EmailMessage]:
    return {message_parts(m)[2]: m for m in received if message_parts(m)[0] == card_id}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_r7_cli_purchase_both_emails_in_french_the_code_redeems_and_is_gone_after(
    env_for: dict[str, str], service: Service, smtp_server: SmtpServer
) -> None:
    at = "2026-01-12T10:00:00Z"
    rc, card, _ = cli(env_for, at, "purchase", "--market", "FR", "--amount", "50",
                      "--payment-method", "card", "--buyer-id", "c1", "--buyer-email",
                      "alice@example.org", "--buyer-name", "Alice", "--recipient-email",
                      "bob@example.org", "--recipient-name", "Bob", "--message", HOSTILE,
                      "--order-id", "o-cli")  # fmt: skip
    assert rc == 0 and card["code"]  # the CLI caller is the buyer: shown once, and e-mailed
    rc, done, _ = cli({**env_for, "GIFTCARDS_SMTP_URL": smtp_server.url}, at, "deliver", "--once")
    assert (rc, done) == (0, {"delivered": 1, "failed": 0})
    mails = mails_of(smtp_server.wait_for(2), card["card_id"])
    confirmation, card_mail = mails["confirmation"], mails["card"]
    for mail in (confirmation, card_mail):
        assert mail.get_content_type() == "multipart/alternative"
        assert mail["Content-Language"] == "fr" and mail["To"] == "alice@example.org"
        assert not mail.defects
    plain = text_of(card_mail, "plain")
    assert code_in(card_mail) == card["code"]
    assert "50,00\xa0€" in plain and "12 juillet 2026" in plain  # Babel's fr_FR formats
    assert "Pour: Bob" in plain and "marketplace.fr" in plain
    html = text_of(card_mail, "html")
    assert "<script>" not in html and "<b>Joyeux" not in html  # the message is escaped
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;Joyeux&lt;/b&gt; &amp; co"
    assert escaped in html
    summary = text_of(confirmation, "plain")
    assert card["code"] not in summary and card["code"][-4:] in summary  # last 4 only
    assert "o-cli" in summary and "12 janvier 2026" in summary
    # The e-mailed code redeems the card.
    rc, used, _ = cli(env_for, at, "redeem", "--code", code_in(card_mail), "--market", "FR",
                      "--order-id", "shop-1", "--order-total", "20", "--customer-id", "c2")
    assert rc == 0 and used["card_id"] == card["card_id"]
    # After delivery the code exists nowhere: its key destroyed, no clear copy stored.
    assert live_code_keys(service) == 0
    stored = store_bytes(service)
    for text in (card["code"], card["code"].replace("-", "")):
        assert text.encode() not in stored
    assert statuses(service) == {card["card_id"]: "delivered"}


def test_r7_r17_refund_card_mailed_to_the_buyer_names_the_refunded_order(
    service: Service, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    card = service.app.purchase(PurchaseCard(
        market="DE", amount=5000, payment_method="card", buyer_id="cust-d",
        buyer_email="dora@example.de", order_id="o-de",
    ))
    service.app.redeem(RedeemCard(
        code=card.code, market="DE", order_id="shop-de", order_total=5000, customer_id="cust-d",
        source="test",
    ))
    refund = service.app.refund(RefundOrder(
        order_id="shop-de", returned_amount=1234, received_on=clock().date(), customer_id="cust-d",
        customer_email="dora@example.de",
    ))
    new = refund.new_card
    assert new is not None
    the_worker = worker(service, smtp_server)
    while the_worker.drain():
        pass
    mails = mails_of(smtp_server.wait_for(4), str(new.card_id))
    plain = text_of(mails["card"], "plain")
    assert code_in(mails["card"]) == new.code != card.code
    assert mails["card"]["Content-Language"] == "de" and "12,34\xa0€" in plain
    assert "shop-de" in plain and "12. Juli 2026" in plain
    assert mails["card"]["To"] == "dora@example.de"
    assert service.app.redeem(RedeemCard(
        code=code_in(mails["card"]), market="DE", order_id="shop-2", order_total=100,
        customer_id="x", source="test",
    )).applied == 100


def test_r7_deferred_421_and_451_then_250_is_delivered_after_retries(
    service: Service, smtp_server: SmtpServer
) -> None:
    smtp_server.control("defer 3 451")
    card = buy(service, "o-451")
    with running(service, smtp_server):
        smtp_server.wait_for(2, timeout=30)
        smtp_server.control("defer 2 421")
        second = buy(service, "o-421")
        received = smtp_server.wait_for(4, timeout=30)
        deadline = time.monotonic() + 10
        while statuses(service) != {card: "delivered", second: "delivered"}:
            assert time.monotonic() < deadline, statuses(service)
            time.sleep(0.05)
    assert (smtp_server.directory / "control").read_text().startswith("defer 0")
    assert len(received) == 4
    assert Deliveries(service).failed() == []


def test_r7_r15_550_records_the_failure_with_an_alert_and_a_retry_sends_the_same_code(
    service: Service, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    card = buy(service, "o-bounce", email="bounce-me@example.org")
    the_worker = worker(service, smtp_server)
    with caplog.at_level(logging.ERROR, logger="giftcards.delivery"):
        while the_worker.drain():
            pass
    assert statuses(service) == {card: "failed"}
    failed = Deliveries(service).failed()
    assert len(failed) == 1
    assert str(failed[0].card_id) == card
    assert failed[0].reason == "address_refused"
    assert any("code delivery failed" in r.getMessage() for r in caplog.records)  # the alert
    assert smtp_server.received() == []
    assert live_code_keys(service) == 1  # kept for customer service's retry
    # Customer service corrects the buyer's address (a rectification under her request); the
    # same code is sent, not a new one.
    privacy = Privacy(service)
    enrol(service, "agent-7", "support")
    privacy.open_request("cust-alice", "rectification", privacy.today(), "req-fix")
    Deliveries(service).retry(
        UUID(card), operator="agent-7", buyer_email="alice.fixed@example.org",
        request_id="req-fix",
    )
    while the_worker.drain():
        pass
    mails = mails_of(smtp_server.wait_for(2), card)
    assert mails["card"]["To"] == "alice.fixed@example.org"
    assert "notice" not in mails  # the previous address bounces: its notice is not sent
    assert message_parts(mails["card"])[1] == 1  # a new Message-ID: a new e-mail
    code = code_in(mails["card"])
    index = service.app.code_index_id(code)
    assert service.app.repository.get(index).target == UUID(card)
    assert statuses(service) == {card: "delivered"}
    assert Deliveries(service).failed() == []
    assert live_code_keys(service) == 0


def test_r7_server_down_the_worker_waits_and_resumes_nothing_lost(
    service: Service, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    cards = [buy(service, f"o-down-{i}") for i in range(3)]
    with running(service, smtp_server) as the_worker:
        time.sleep(2.0)
        assert the_worker.delivered == 0
        assert set(statuses(service).values()) == {"pending"}
        smtp_server.start()  # same port
        codes = smtp_server.wait_for_cards(3, timeout=60)
    assert set(codes) == set(cards)
    assert set(statuses(service).values()) == {"delivered"}


def test_r7_p2_erasure_of_the_buyer_before_delivery_fails_it_alerts_and_keeps_the_liability(
    service: Service, smtp_server: SmtpServer
) -> None:
    card = buy(service, "o-erased", buyer_id="cust-gone", email="gone@example.org")
    privacy = Privacy(service)
    Operators(service.app).add("dpo-1", "dpo", break_glass("tests"))  # erasure: accountable
    privacy.open_request("cust-gone", "erasure", privacy.today(), "req-gone")
    privacy.erase(["cust-gone"], "req-gone", "dpo-1")
    the_worker = worker(service, smtp_server)
    while the_worker.drain():
        pass
    assert smtp_server.received() == []
    failed = Deliveries(service).failed()
    assert [(str(f.card_id), f.reason) for f in failed] == [(card, "buyer_erased")]
    assert live_code_keys(service) == 0  # nobody may receive it any more
    # The money does not vanish: the card stays active (liability) until it expires (breakage).
    assert service.app.show(UUID(card)).status == "active"
    assert service.app.show(UUID(card)).balance == 5000


def test_r7_p5_no_code_in_any_log_line_view_export_or_error_after_delivery(
    service: Service, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    codes = []
    for i, email in enumerate(["a@example.org", "bounce@example.org", "c@example.org"]):
        made = service.app.purchase(PurchaseCard(
            market="GB", amount=2500, payment_method="card", buyer_id=f"cust-{i}",
            buyer_email=email, message="Happy birthday", order_id=f"o-p5-{i}",
        ))
        codes.append(made.code)
    the_worker = worker(service, smtp_server)
    while the_worker.drain():
        pass
    received = smtp_server.wait_for(4)
    assert {code_in(m) for m in received if message_parts(m)[2] == "card"} == {codes[0], codes[2]}
    assert "£25.00" in text_of(received[0], "plain")  # en_GB
    views = build_projector(service.settings)  # beside the store: scanned with it
    sync_store(service.app, views)
    views.db.close()
    privacy = Privacy(service)
    Operators(service.app).add("dpo-1", "dpo", break_glass("tests"))  # R21: exports
    exported = privacy.export(["cust-0", "cust-1"], PiiReader(service, "dpo-1", "p", "t"))
    texts = [
        "\n".join(r.getMessage() for r in caplog.records),
        repr(Deliveries(service).failed()),
        repr(exported),
        repr([service.app.history(UUID(s)) for s in statuses(service)]),
    ]
    stored = store_bytes(service)  # events, vault, access log and views
    for code in codes:
        for form in (code, code.replace("-", "")):
            assert form.encode() not in stored, form
            for text in texts:
                assert form not in text


def test_r7_r21_a_rectified_email_before_delivery_is_where_the_card_goes(
    service: Service, smtp_server: SmtpServer
) -> None:
    """Art. 16: the buyer corrected a mistyped address before delivery; the worker reads the
    rectified value (sealed beside the store), never the old one."""
    card = buy(service, "o-typo", buyer_id="cust-typo", email="alice@exmaple.org")
    privacy = Privacy(service)
    Operators(service.app).add("dpo-1", "dpo", break_glass("tests"))
    privacy.open_request("cust-typo", "rectification", privacy.today(), "req-typo")
    privacy.rectify("cust-typo", "email", "alice@example.org", "req-typo", "dpo-1")
    the_worker = worker(service, smtp_server)
    while the_worker.drain():
        pass
    mails = mails_of(smtp_server.received(), card)
    assert {m["To"] for m in mails.values()} == {"alice@example.org"}
