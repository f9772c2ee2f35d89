"""P2: the vault forgets whose keys it destroyed. An erased key row stays (a sealed value names
its key id, which must keep opening as `[erased]`), but no vault table names the subject any
more, in any encoding: keys erased by `gdpr erase`, keys a unit of work commits already
destroyed (an erasure during its batch), and rows erased before the vault forgot (swept by
`gdpr purge`)."""

from __future__ import annotations

from typing import Any

from application.commands import PurchaseCard
from entrypoints.cli.gdpr import run_purge
from infra.bootstrap import Service
from infra.vault_keys import ERASED
from tests.integration.test_erasure_scan_everywhere import forms
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import act, export

CUSTOMER, EMAIL, NAME = "cust-forgotten", "forgotten@example.org", "Fanny Oubliée"
VAULT_TABLES = ("subject_keys", "field_keys", "subject_erasures", "pending_shreds")


def vault_bytes(service: Service) -> bytes:
    """Every column of every vault table, as bytes."""
    db, chunks = service.db, []
    for table in VAULT_TABLES:
        columns = (["key_id", "subject_id", "created_at", "erased_at"] if table == "subject_keys"
                   else ["*"])
        for row in db.execute(f"SELECT {', '.join(columns)} FROM {table}"):
            chunks += [str(v).encode() for v in row if v is not None]
    return b"\n".join(chunks)


def named(service: Service, subject: str) -> list[str]:
    content = vault_bytes(service)
    return [form.decode(errors="replace") for form in forms(subject) if form in content]


def buy(service: Service, order_id: str) -> dict[str, Any]:
    return service.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id=CUSTOMER, buyer_email=EMAIL,
        buyer_name=NAME, recipient_email="friend@example.org", order_id=order_id,
    ))


def test_p2_an_erased_subjects_key_rows_name_no_one(service: Service) -> None:
    buy(service, "o-forget-1")
    subject = store_id(service, CUSTOMER)  # the keys' subject
    rows_before = service.db.execute("SELECT count(*) FROM subject_keys")[0][0]
    assert named(service, subject)  # the scan sees the id while the subject is live

    result = act(service, "erase", [CUSTOMER], "req-forget")

    assert result["keys_destroyed"] >= 1
    assert named(service, subject) == named(service, CUSTOMER) == []
    # The rows stay, destroyed and labelled as erased: what was sealed opens as `[erased]`.
    assert service.db.execute("SELECT count(*) FROM subject_keys")[0][0] == rows_before
    assert service.db.execute(
        "SELECT count(*) FROM subject_keys WHERE subject_id = ? AND wrapped_key IS NULL",
        (ERASED,))[0][0] >= 1
    bought = export(service, [subject])["cards_bought"]
    assert bought and bought[0]["buyer_email"] == ERASED
    # The customer id no longer leads there; coming back, they are a new person: a new
    # store id, a new readable key.
    assert export(service, [CUSTOMER])["cards_bought"] == []
    buy(service, "o-forget-2")
    assert store_id(service, CUSTOMER) != subject
    assert {c["buyer_email"] for c in export(service, [CUSTOMER])["cards_bought"]} == {EMAIL}


def test_p2_a_key_committed_already_destroyed_names_no_one(service: Service) -> None:
    """A unit of work read the subject's keys, an erasure came, then the unit commits the key
    it created: the key is written destroyed, and unlabelled."""
    buy(service, "o-forget-1")
    vault, subject = service.vault, store_id(service, CUSTOMER)
    act(service, "erase", [CUSTOMER], "req-forget")
    session = vault.session()
    session.prefetch([subject])  # read after the first erasure: no live key, one erasure
    sealed = session.seal(subject, "a value sealed by the unit")
    service.db.execute(  # a second erasure, after the unit read the keys (no key to destroy)
        "UPDATE subject_erasures SET erasures = erasures + 1")

    vault.store(session.new)

    key_id = sealed.split(":")[1]
    rows = service.db.execute(
        "SELECT subject_id, wrapped_key FROM subject_keys WHERE key_id = ?", (key_id,))
    assert rows == [(ERASED, None)]
    assert vault.open(subject, sealed) == ERASED
    assert named(service, subject) == []


def test_p2_purge_makes_the_vault_forget_subjects_erased_before(
    service: Service, clock: Any
) -> None:
    """A store whose vault labelled destroyed keys with their subject (erased before this)."""
    buy(service, "o-forget-1")
    subject = store_id(service, CUSTOMER)
    act(service, "erase", [CUSTOMER], "req-forget")
    service.db.execute(  # as an older vault left an erased key row
        "UPDATE subject_keys SET subject_id = ? WHERE wrapped_key IS NULL", (subject,))
    assert named(service, subject)

    report = run_purge(service)

    assert named(service, subject) == []
    assert report["erased_keys_unlabelled"] >= 1
    assert run_purge(service)["erased_keys_unlabelled"] == 0
