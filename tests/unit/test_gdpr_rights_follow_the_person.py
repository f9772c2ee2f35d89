"""Rights follow the person, not one address: after an e-mail is rectified, rectification,
export and erasure find the subject through every identifier they have had, while the former
address leads to them only for an erasure or an export, never for delivery (art. 15-17)."""

from __future__ import annotations

from typing import Any

import pytest

from application.privacy import Privacy
from application.privacy_reads import PiiReader, iter_subjects
from domain.errors import DomainError
from infra.bootstrap import Service
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import (
    BOB_EMAIL,
    BOB_NAME,
    busy_history,
    buy,
    export,
    register_operator,
)

NEW_EMAIL = "bob.new@example.org"


def rectify_bob(service: Service, clock: Any) -> tuple[Privacy, str]:
    busy_history(service, clock)
    privacy, operator = Privacy(service), register_operator(service)
    privacy.open_request("cust-bob", "rectification", privacy.today(), "rect-bob")
    privacy.rectify("cust-bob", "email", NEW_EMAIL, "rect-bob", operator)
    return privacy, operator


def test_r21_export_by_customer_id_or_new_email_finds_the_cards_received_at_the_old_one(
    service: Service, clock: Any
) -> None:
    rectify_bob(service, clock)

    for ids in (["cust-bob"], list(iter_subjects([], [NEW_EMAIL], service)),
                list(iter_subjects([], [BOB_EMAIL], service))):
        document = export(service, ids)
        received = document["cards_received"]
        assert len(received) == 1, ids
        # The received card shows the corrected address; the old one is shredded.
        assert received[0]["recipient_email"] == NEW_EMAIL
        assert received[0]["recipient_name"] == BOB_NAME
        assert {c["buyer_email"] for c in document["cards_bought"]} == {NEW_EMAIL}
        assert BOB_EMAIL not in str(document)


def test_r21_the_old_address_never_resolves_for_delivery(service: Service, clock: Any) -> None:
    privacy, operator = rectify_bob(service, clock)
    lookup = PiiReader(service, operator, "subject lookup", "gdpr subject")

    with pytest.raises(DomainError) as error:
        privacy.subject_for_email(BOB_EMAIL, lookup)

    assert error.value.code == "former_address"
    # The subject is found by the id the store keeps for Bob (it takes every other right).
    assert privacy.subject_for_email(NEW_EMAIL, lookup)["subject_id"] == store_id(service,
                                                                                 "cust-bob")
    # A card bought for the old address after the correction is someone else's gift: it is
    # delivered to the address it was bought for, and is not in Bob's export.
    clock.advance(minutes=1)
    later = buy(service.app, "o-later", "cust-carol", recipient_email=BOB_EMAIL,
                recipient_name="Robert Autre")
    worker = PiiReader(service, "deliver", "delivery", "deliver", process=True)
    (purchase, *_) = service.app.events.get(later.card_id)
    pii = purchase.pii  # type: ignore[attr-defined]
    assert worker.open(pii["recipient_subject"], pii["recipient_email"],
                       "recipient_email") == BOB_EMAIL
    received = export(service, ["cust-bob"])["cards_received"]
    assert str(later.card_id) not in {c["card_id"] for c in received}


def test_p2_erasure_and_a_second_rectification_find_every_identifier(
    service: Service, clock: Any
) -> None:
    privacy, operator = rectify_bob(service, clock)
    # A second correction, asked by the subject id of the old address: still Bob.
    old_subject = service.vault.subject_for_email(BOB_EMAIL)
    privacy.open_request(old_subject, "rectification", privacy.today(), "rect-bob-2")
    done = privacy.rectify(old_subject, "email", "bob.third@example.org", "rect-bob-2", operator)
    bob = store_id(service, "cust-bob")
    assert done["subject_id"] == bob
    received = export(service, ["cust-bob"])["cards_received"]
    assert [c["recipient_email"] for c in received] == ["bob.third@example.org"]

    privacy.open_request("cust-bob", "erasure", privacy.today(), "era-bob")
    erased = privacy.erase(list(iter_subjects([], [NEW_EMAIL], service)), "era-bob", operator)

    assert old_subject in erased["subject_ids"] and bob in erased["subject_ids"]
    assert len(erased["cards_as_recipient"]) == 1
    for email in (BOB_EMAIL, NEW_EMAIL, "bob.third@example.org"):
        assert bob not in iter_subjects([], [email], service)
    assert service.vault.resolve_store_id("cust-bob") is None
