"""P2: the maildir never creates a key: an e-mail whose owner was erased after the worker read
it (or who has no key) is kept nowhere, instead of sealed under a fresh key that the erasure
never reached."""

from __future__ import annotations

from email.message import EmailMessage

from infra.bootstrap import Service
from infra.mail.transport import MaildirTransport, read_maildir

EMAIL = "late.erased@example.org"


def message() -> EmailMessage:
    sent = EmailMessage()
    sent["To"], sent["From"], sent["Subject"] = EMAIL, "cards@example.com", "Your gift card"
    sent["Message-ID"] = "<m-late@giftcards.example>"
    sent.set_content(f"Hello {EMAIL}, your code is in this e-mail.")
    return sent


def test_p2_the_maildir_keeps_nothing_of_an_owner_erased_before_the_copy_is_written(
    service: Service,
) -> None:
    vault = service.vault
    vault.seal("cust-late", "their purchase's sealed field")  # they had a key...
    vault.erase("cust-late")  # ...erased while the worker was sending
    maildir = service.settings.data_dir / "mail"
    MaildirTransport(maildir, vault).send(message(), owner="cust-late")

    assert "cust-late" not in vault.live_subjects()
    assert read_maildir(maildir, vault) == []
    assert list((maildir / "new").glob("*")) == []


def test_r7_the_maildir_keeps_a_live_owners_copy(service: Service) -> None:
    vault = service.vault
    vault.seal("cust-live", "their purchase's sealed field")
    maildir = service.settings.data_dir / "mail"
    MaildirTransport(maildir, vault).send(message(), owner="cust-live")
    assert [str(m["To"]) for m in read_maildir(maildir, vault)] == [EMAIL]
