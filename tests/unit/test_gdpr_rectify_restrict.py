"""Rectification (art. 16) and restriction (art. 18) as commands recorded
on the subject's stream, honoured by later reads (R21, P1, P3)."""

from __future__ import annotations

from typing import Any

import pytest

from application.privacy import Privacy
from application.privacy_reads import PiiReader
from domain.errors import DomainError
from domain.subjects import DataSubject
from infra.bootstrap import Service
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import ALICE_EMAIL, busy_history, export, register_operator

NEW_EMAIL = "alice.new@example.org"


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(DomainError) as error:
        call(*args)
    return error.value.code


def subject(service: Service, subject_id: str) -> DataSubject:
    stream = DataSubject.id_for(store_id(service, subject_id))  # derived from the store id
    return service.app.repository.get(stream)  # type: ignore[no-any-return]


def test_r21_rectified_email_is_read_by_exports_and_deliveries(
    memory_service: Service, clock: Any
) -> None:
    busy_history(memory_service, clock)
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    assert refused(privacy.rectify, "cust-alice", "email", NEW_EMAIL, "rect-1", operator) == (
        "unknown_request"
    )
    privacy.open_request("cust-alice", "rectification", privacy.today(), "rect-1")
    assert refused(privacy.rectify, "cust-alice", "phone", "1", "rect-1", operator) == (
        "invalid_field"
    )

    done = privacy.rectify("cust-alice", "email", NEW_EMAIL, "rect-1", operator)

    assert (done["field"], done["replayed"], privacy.request("rect-1")["status"]) == (
        "email", False, "closed"
    )
    again = privacy.rectify("cust-alice", "email", "other@example.org", "rect-1", operator)
    assert again["replayed"] is True
    bought = export(memory_service, ["cust-alice"])["cards_bought"]
    assert {card["buyer_email"] for card in bought} == {NEW_EMAIL}
    # The delivery worker reads through the same reader (consumers/delivery.py).
    worker = PiiReader(memory_service, "deliver", "delivery", "deliver", process=True)
    token = memory_service.db.execute("SELECT token FROM gdpr_rectifications")[0][0]
    alice = store_id(memory_service, "cust-alice")  # what her events name
    assert worker.open(alice, "gc1:unused:AAAA", "buyer_email") == NEW_EMAIL
    assert NEW_EMAIL not in token and ALICE_EMAIL not in token  # sealed, not clear
    events = memory_service.app.events.get(DataSubject.id_for(alice))
    rectified = [e for e in events if isinstance(e, DataSubject.Rectified)]
    assert len(rectified) == 1 and rectified[0].field == "email"
    assert NEW_EMAIL not in rectified[0].model_dump_json()  # the value never in the event
    document = export(memory_service, ["cust-alice"])
    assert "Rectified" in {r["type"] for r in document["rights_exercised"]}
    log = privacy.access_log("cust-alice", PiiReader(memory_service, operator, "review", "t"))
    assert ("email", "gdpr rectify") in {(e["field"], e["command"]) for e in log["entries"]}


def test_p2_erasure_also_shreds_the_rectified_value(
    memory_service: Service, clock: Any
) -> None:
    busy_history(memory_service, clock)
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    privacy.open_request("cust-alice", "rectification", privacy.today(), "rect-1")
    privacy.rectify("cust-alice", "name", "Alice Nouveau", "rect-1", operator)
    privacy.open_request("cust-alice", "erasure", privacy.today(), "era-1")
    privacy.erase(["cust-alice"], "era-1", operator)
    assert memory_service.db.execute("SELECT count(*) FROM gdpr_rectifications") == [(0,)]
    bought = export(memory_service, ["cust-alice"])["cards_bought"]
    assert "Alice Nouveau" not in str(bought)


def test_r21_restriction_recorded_until_lifted_and_exported(
    memory_service: Service, clock: Any
) -> None:
    busy_history(memory_service, clock)
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    privacy.open_request("cust-alice", "restriction", privacy.today(), "res-1")
    privacy.open_request("cust-alice", "restriction", privacy.today(), "res-2")
    assert refused(privacy.unrestrict, ["cust-alice"], "res-1", operator) == "not_restricted"

    assert privacy.restrict(["cust-alice"], "res-1", operator)["results"][0]["recorded"]

    assert subject(memory_service, "cust-alice").restricted
    assert privacy.restrict(["cust-alice"], "res-1", operator)["replayed"] is True
    assert refused(privacy.restrict, ["cust-alice"], "res-2", operator) == "already_restricted"
    lifted = privacy.unrestrict(["cust-alice"], "res-1", operator)
    assert lifted["results"][0]["recorded"] is True
    assert privacy.unrestrict(["cust-alice"], "res-1", operator)["results"][0]["recorded"] is False
    assert not subject(memory_service, "cust-alice").restricted
    rights = export(memory_service, ["cust-alice"])["rights_exercised"]
    assert [r["type"] for r in rights] == ["Restricted", "RestrictionLifted"]
    log = privacy.access_log("cust-alice", PiiReader(memory_service, operator, "review", "t"))
    commands = [e["command"] for e in log["entries"] if e["field"] == "*"]
    assert commands == ["gdpr restrict", "gdpr unrestrict", "gdpr unrestrict"]  # each run


def test_r21_rectified_recipient_email_still_finds_the_same_subject(
    memory_service: Service, clock: Any
) -> None:
    """A recipient's id is a keyed hash of their e-mail: after `gdpr rectify --field email`,
    a lookup or an export by the new e-mail must find the same person (art. 16, 15)."""
    from application.privacy_reads import iter_subjects
    from tests.unit.test_gdpr_privacy import BOB_EMAIL

    busy_history(memory_service, clock)
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    bob = memory_service.vault.subject_for_email(BOB_EMAIL)
    privacy.open_request(bob, "rectification", privacy.today(), "rect-bob")
    privacy.rectify(bob, "email", "bob.new@example.org", "rect-bob", operator)

    lookup = PiiReader(memory_service, operator, "subject lookup", "gdpr subject")
    found = privacy.subject_for_email("Bob.New@example.org", lookup)
    assert found["subject_id"] == bob
    ids = list(iter_subjects([], ["bob.new@example.org"], memory_service))
    received = export(memory_service, ids)["cards_received"]
    assert [card["recipient_email"] for card in received] == ["bob.new@example.org"]
    # After erasure the alias goes with the rest: the new e-mail no longer leads to Bob.
    privacy.open_request(bob, "erasure", privacy.today(), "era-bob")
    privacy.erase([bob], "era-bob", operator)
    assert bob not in iter_subjects([], ["bob.new@example.org"], memory_service)


def test_r21_rectification_shreds_the_old_value_and_keeps_the_rest(
    memory_service: Service, clock: Any
) -> None:
    """Art. 16 ("new sealed value, old one shredded"): the old e-mail, still in the
    purchase event, cannot be opened any more, by any reader, while the subject's other
    sealed fields (their name, their message) still can; a second correction shreds the first."""
    from uuid import UUID

    from infra.vault_keys import ERASED
    from tests.unit.test_gdpr_privacy import ALICE_MESSAGE, ALICE_NAME

    history = busy_history(memory_service, clock)
    vault = memory_service.vault
    (purchase, *_) = memory_service.app.events.get(UUID(history.alice_gift))
    pii = purchase.pii  # type: ignore[attr-defined]
    assert vault.open(store_id(memory_service, "cust-alice"), pii["buyer_email"]) == ALICE_EMAIL
    privacy, operator = Privacy(memory_service), register_operator(memory_service)
    privacy.open_request("cust-alice", "rectification", privacy.today(), "rect-1")

    done = privacy.rectify("cust-alice", "email", NEW_EMAIL, "rect-1", operator)

    assert done["old_value_shredded"] is True and done["shredding"] == "verified"
    assert vault.open(store_id(memory_service, "cust-alice"), pii["buyer_email"]) == ERASED
    assert vault.open(store_id(memory_service, "cust-alice"), pii["buyer_name"]) == ALICE_NAME
    reader = PiiReader(memory_service, operator, "check", "test")
    assert reader.open_message(store_id(memory_service, "cust-alice"), pii) == ALICE_MESSAGE
    alice = store_id(memory_service, "cust-alice")
    assert reader.open(alice, pii["buyer_email"], "buyer_email") == NEW_EMAIL
    first = memory_service.db.execute("SELECT token FROM gdpr_rectifications")[0][0]
    privacy.open_request("cust-alice", "rectification", privacy.today(), "rect-2")
    privacy.rectify("cust-alice", "email", "alice.third@example.org", "rect-2", operator)
    assert vault.open(store_id(memory_service, "cust-alice"), first) == ERASED
    assert {c["buyer_email"] for c in export(memory_service, ["cust-alice"])["cards_bought"]} == {
        "alice.third@example.org"}


def test_p2_a_field_key_left_by_an_erasure_racing_a_purchase_is_replaced(
    memory_service: Service,
) -> None:
    """An erasure that commits between a purchase's two reads of the field key leaves a row
    under a destroyed key: the purchase seals under a new one instead of failing."""
    vault = memory_service.vault
    old = vault.seal_field("cust-race", "email", "old@example.org")
    memory_service.db.execute(  # the erasure's key destruction, its row cleanup not yet run
        "UPDATE subject_keys SET wrapped_key = NULL WHERE subject_id = 'cust-race'")
    token = vault.seal_field("cust-race", "email", "new@example.org")
    assert vault.open("cust-race", token) == "new@example.org"
    assert vault.open("cust-race", old) == "[erased]"
