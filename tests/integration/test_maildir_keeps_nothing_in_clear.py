"""R7/R21/P2: the maildir transport (the default without an SMTP URL) keeps each sent e-mail
sealed under its owner's key: nothing in clear on disk, and an erasure makes it unreadable."""

from __future__ import annotations

import base64
from pathlib import Path

from application.commands import PurchaseCard
from application.privacy import Privacy
from composition.bootstrap import Service, build_delivery_worker
from infra.mail.transport import read_maildir
from tests.mail.inbox import code_in
from tests.operator_register import enrol

NAME, EMAIL, MESSAGE = "Zoé Maildirova", "zoe.maildir@example.org", "Bon anniversaire Zoé"


def forms(text: str) -> list[bytes]:
    raw = text.encode()
    return [raw, text.lower().encode(), base64.b64encode(raw), raw.hex().encode(),
            text.encode("unicode_escape")]


def disk(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


def test_r7_p2_the_maildir_keeps_no_sent_message_in_clear_and_erasure_reaches_it(
    service: Service,
) -> None:
    card = service.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="cust-zoe", buyer_email=EMAIL,
        buyer_name=NAME, message=MESSAGE, order_id="o-maildir",
    ))
    assert service.settings.smtp_url is None  # the default transport
    worker = build_delivery_worker(service)
    while worker.drain():
        pass
    assert worker.delivered == 1
    maildir = service.settings.data_dir / "mail"
    stored = disk(maildir)
    assert stored  # it wrote the two e-mails...
    for secret in (card.code, card.code.replace("-", ""), EMAIL, NAME, MESSAGE):
        for form in forms(secret):
            assert form not in stored, (secret, form)  # ...but nothing of them in clear
    # Until an erasure, the buyer's e-mails can be read back (the demo shows them).
    sent = read_maildir(maildir, service.vault)
    assert {str(m["To"]) for m in sent} == {EMAIL} and len(sent) == 2
    assert {code_in(m) for m in sent if ".card@" in str(m["Message-ID"])} == {card.code}
    privacy = Privacy(service)
    enrol(service, "dpo-1", "dpo")
    privacy.open_request("cust-zoe", "erasure", privacy.today(), "req-zoe")
    privacy.erase(["cust-zoe"], "req-zoe", "dpo-1")
    assert read_maildir(maildir, service.vault) == []
