"""SIGKILL the real `giftcards deliver` between send and record, again and again, under load:
every card's code arrives, always the same per card, and no sealed code outlives delivery."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest

from application.commands import PurchaseCard
from domain.streams import Index
from infra.bootstrap import Service
from tests.integration.test_code_delivery import live_code_keys, statuses
from tests.integration.test_gdpr_erasure import store_bytes
from tests.mail.inbox import SmtpServer, message_parts, smtp_server

__all__ = ["smtp_server"]  # the fixture

CARDS, KILLS = 30, 8
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [GIFTCARDS, "deliver"], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def caught_up(service: Service, buyer: threading.Thread) -> bool:
    """Every card bought is delivered and no more are coming: nothing left to kill during."""
    return not buyer.is_alive() and set(statuses(service).values()) == {"delivered"}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_r7_worker_killed_between_send_and_record_under_load_sends_every_code_the_same(
    service: Service, env_for: dict[str, str], smtp_server: SmtpServer, tmp_path: Path
) -> None:
    # The server stores each message, then waits before its 250: a kill in that wait is a
    # kill after the send and before the worker records it.
    smtp_server.control("delay 0.1")
    env = {**env_for, "GIFTCARDS_SMTP_URL": smtp_server.url, "GIFTCARDS_NOW": "2026-01-12T10:00Z",
           # One active worker per store: a restarted worker takes the killed one's lease over
           # once it expires, so a short lease keeps the kills coming.
           "GIFTCARDS_RELAY_LEASE_SECONDS": "2"}
    log = tmp_path / "deliver.log"
    codes: dict[str, str] = {}

    def buy_under_load() -> None:
        for i in range(CARDS):
            card = service.app.purchase(PurchaseCard(
                market="IT", amount=2000 + i, payment_method="card", buyer_id=f"c{i}",
                buyer_email=f"c{i}@example.it", order_id=f"o-{i}",
            ))
            codes[str(card.card_id)] = card.code
            time.sleep(0.25)

    buyer = threading.Thread(target=buy_under_load)
    buyer.start()
    rng = random.Random(11)
    worker = start(env, log)
    try:
        kills = 0
        while kills < KILLS and not caught_up(service, buyer):
            seen = len(smtp_server.received())
            deadline = time.monotonic() + 30
            while len(smtp_server.received()) == seen:  # killed while it is sending
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline or caught_up(service, buyer), "sent nothing"
                time.sleep(0.01)
            kills += 1
            time.sleep(rng.uniform(0.0, 0.08))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker = start(env, log)
        buyer.join()
        deadline = time.monotonic() + 120
        while set(statuses(service).values()) != {"delivered"} or len(statuses(service)) < CARDS:
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, Counter(statuses(service).values())
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
        buyer.join()

    received = smtp_server.received()
    ids = Counter(str(m["Message-ID"]).strip() for m in received)
    sent = smtp_server.codes()  # asserts one code per card across every re-send
    assert sent == codes  # every card's own code, none missing
    kinds = Counter(message_parts(m)[2] for m in received if ids[str(m["Message-ID"]).strip()])
    assert {message_parts(m)[0] for m in received if message_parts(m)[2] == "confirmation"} == set(
        codes
    )
    assert kills >= KILLS // 2, kills
    resent = sum(n - 1 for n in ids.values())
    assert resent >= 1, "no kill landed between a send and its record"  # the window was hit
    assert kinds["card"] >= CARDS
    for card_id, code in sent.items():
        index = service.app.repository.get(service.app.code_index_id(code))
        assert isinstance(index, Index) and index.target == UUID(card_id)  # it redeems this card
    assert live_code_keys(service) == 0  # every delivered card's key destroyed
    stored = store_bytes(service)  # every text/bytea column of every table
    for code in codes.values():
        assert code.encode() not in stored and code.replace("-", "").encode() not in stored
    assert "Traceback" not in log.read_text()
