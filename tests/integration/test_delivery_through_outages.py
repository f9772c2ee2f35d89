"""R7 under mail server faults: erasure wins over a delivery waiting for the server, two
workers through an outage send one e-mail per card, and a send whose answer was lost after
the server stored it is not sent again blindly."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from application.delivery import Deliveries
from application.privacy import Privacy
from consumers.delivery import DeliveryWorker
from infra import bootstrap
from infra.bootstrap import Service
from infra.config import load_settings
from infra.mail import transport
from infra.mail.transport import SmtpTransport
from tests.conftest import FixedClock
from tests.integration.test_code_delivery import buy, statuses
from tests.mail.inbox import SmtpServer, message_parts, smtp_server
from tests.operator_register import enrol
from tests.store_ids import store_id

__all__ = ["smtp_server"]  # the fixture


@contextmanager
def workers(service: Service, smtp: SmtpServer, count: int = 1) -> Iterator[list[DeliveryWorker]]:
    """`count` delivery workers, each in a thread with a lease holder of its own (as two
    `serve` instances would be), retrying the mail server every half second at most."""
    stop = threading.Event()
    made = [DeliveryWorker(service, SmtpTransport(smtp.url), max_delay=0.5) for _ in range(count)]
    failures: list[BaseException] = []

    def run(worker: DeliveryWorker) -> None:
        try:
            worker.run(stop, idle_s=0.05)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in made]
    for thread in threads:
        thread.start()
    try:
        yield made
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not failures, failures


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def delivery_reads(service: Service, customer_id: str) -> int:
    """The delivery worker's reads of a buyer's data, logged under their store id."""
    rows = service.db.execute(
        "SELECT count(*) FROM pii_access_log WHERE subject_id = ? AND command = 'deliver'",
        (store_id(service, customer_id),),
    )
    return int(rows[0][0])


def test_r7_p2_erasure_during_a_mail_outage_no_message_to_the_erased_address(
    service: Service, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    card = buy(service, "o-outage", buyer_id="cust-gone", email="gone@example.org",
               buyer_name="Alice Gone", message="for you")  # fmt: skip
    privacy = Privacy(service)
    enrol(service, "dpo-1", "dpo")
    with workers(service, smtp_server):
        wait_until(lambda: delivery_reads(service, "cust-gone") > 0)  # it tried and waits
        privacy.open_request("cust-gone", "erasure", privacy.today(), "req-gone")
        privacy.erase(["cust-gone"], "req-gone", "dpo-1")
        smtp_server.start()  # same port: the server is back
        wait_until(lambda: statuses(service)[card] != "pending")
    assert statuses(service) == {card: "failed"}
    assert smtp_server.received() == []
    failed = Deliveries(service).failed()
    assert [(str(f.card_id), f.reason) for f in failed] == [(card, "buyer_erased")]


@pytest.mark.serial  # a 1 s lease: a worker starved of CPU that long loses it
def test_r7_two_workers_through_an_outage_longer_than_the_lease_send_one_email_per_card(
    env_for: dict[str, str], clock: FixedClock, smtp_server: SmtpServer
) -> None:
    settings = load_settings({**env_for, "GIFTCARDS_RELAY_LEASE_SECONDS": "1"})
    service = bootstrap.build(settings, clock=clock)
    try:
        Privacy(service)  # the access log's table, read below while the workers start
        smtp_server.stop()
        cards = [buy(service, f"o-two-{i}", buyer_id=f"cust-{i}") for i in range(3)]
        with workers(service, smtp_server, count=2) as both:
            wait_until(lambda: delivery_reads(service, "cust-0") > 0)
            time.sleep(3.0)  # the outage outlasts the 1 s lease three times over
            smtp_server.start()
            wait_until(lambda: set(statuses(service).values()) == {"delivered"})
            time.sleep(1.0)  # a second sender, if any, would have sent by now
        per_mail = Counter(message_parts(m) for m in smtp_server.received())
        assert {card for card, _, _ in per_mail} == set(cards)
        assert set(per_mail.values()) == {1}, per_mail
        assert len(per_mail) == 6
        assert sum(w.delivered for w in both) == 3
    finally:
        service.close()


def test_r7_an_answer_lost_after_the_server_stored_the_message_is_not_sent_again(
    service: Service, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The server stores DATA, then answers after the client's timeout: the message may have
    arrived. Sending it again is how one e-mail arrives many times: it waits for customer
    service, with its Message-ID, failed `outcome_unknown`."""
    monkeypatch.setattr(transport, "TIMEOUT_SECONDS", 1)
    smtp_server.control("delay 2.5")
    card = buy(service, "o-lost-answer")
    with workers(service, smtp_server):
        wait_until(lambda: statuses(service)[card] != "pending")
        time.sleep(1.0)  # a blind retry would have stored a second copy by now
    assert statuses(service) == {card: "failed"}
    received = smtp_server.received()
    assert [message_parts(m)[1:] for m in received] == [(0, "confirmation")]
    failed = Deliveries(service).failed()
    assert [(str(f.card_id), f.reason) for f in failed] == [(card, "outcome_unknown")]
