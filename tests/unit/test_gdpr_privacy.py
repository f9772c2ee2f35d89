"""Erasure, export, objection, access log and request register on the in-memory application."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import orjson
import pytest

from application.cards import GiftCards
from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from application.operators import Operators, break_glass
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from application.results import Purchase
from domain.errors import DomainError
from infra.bootstrap import Service
from infra.envelope import stored_envelope
from infra.vault_keys import ERASED
from tests.store_ids import published, store_id

ALICE_EMAIL, ALICE_NAME, ALICE_MESSAGE = "alice@example.com", "Alice Durand", "from A with love"
BOB_EMAIL, BOB_NAME, BOB_MESSAGE = "bob@example.org", "Bob Martin", "merci pour tout, B."
CAROL_EMAIL = "carol@example.net"


@dataclass
class History:
    """The cards of a busy history, and what Alice (buyer AND recipient) is entitled to see."""

    alice_ids: list[str]
    bob_ids: list[str]
    alice_gift: str  # bought by Alice for Bob, redeemed by Bob
    bob_gift: str  # bought by Bob for Alice, redeemed by Alice then partly refunded
    cards: list[str]
    codes: list[str]


def buy(app: GiftCards, order: str, buyer: str, amount: int = 5000, **pii: str) -> Purchase:
    return app.purchase(PurchaseCard(
        market="FR", amount=amount, payment_method="card", buyer_id=buyer, order_id=order, **pii
    ))


def busy_history(service: Service, clock: Any) -> History:
    """Three people, gifts both ways, redemptions, a refund, a cancellation, an expiry."""
    app = service.app
    a = buy(app, "o-a1", "cust-alice", buyer_email=ALICE_EMAIL, buyer_name=ALICE_NAME,
            recipient_email=BOB_EMAIL, recipient_name=BOB_NAME, message=ALICE_MESSAGE)
    b = buy(app, "o-b1", "cust-bob", 8000, buyer_email=BOB_EMAIL, recipient_email=ALICE_EMAIL,
            recipient_name=ALICE_NAME, message=BOB_MESSAGE)
    c = buy(app, "o-c1", "cust-carol", buyer_email=CAROL_EMAIL, recipient_email=ALICE_EMAIL)
    d = buy(app, "o-c2", "cust-carol", 2000, buyer_email=CAROL_EMAIL)
    e = buy(app, "o-c3", "cust-carol", 3000)
    clock.advance(days=1)
    app.redeem(RedeemCard(
        code=a.code, market="FR", order_id="shop-bob-1", order_total=12000, customer_id="cust-bob",
        source="test",
    ))
    app.redeem(RedeemCard(
        code=b.code, market="FR", order_id="shop-alice-1", order_total=6000,
        customer_id="cust-alice", source="test",
    ))
    with pytest.raises(DomainError):
        app.redeem(RedeemCard(
            code="NOPE-NOPE-NOPE", market="FR", order_id="shop-alice-2", order_total=100,
            customer_id="cust-alice", source="test",
        ))
    app.cancel(CancelCard(card_id=d.card_id))
    clock.advance(days=3)
    refund = app.refund(RefundOrder(
        order_id="shop-alice-1", returned_amount=1000,
        received_on=app.markets.get("FR").local_date(clock()),
    ))
    clock.advance(days=200)
    app.expire()
    cards = [str(x.card_id) for x in (a, b, c, d, e)] + [str(refund.new_card.card_id)]
    vault = service.vault
    return History(
        alice_ids=["cust-alice", vault.subject_for_email(ALICE_EMAIL)],
        bob_ids=["cust-bob", vault.subject_for_email(BOB_EMAIL)],
        alice_gift=str(a.card_id),
        bob_gift=str(b.card_id),
        cards=cards,
        codes=[x.code for x in (a, b, c, d, e)] + [refund.new_card.code],
    )


def export(service: Service, ids: list[str], operator: str = "agent-7") -> dict[str, Any]:
    register_operator(service, operator)
    reader = PiiReader(service, operator, "access request", "test")
    return Privacy(service).export(ids, reader)


def register_operator(service: Service, name: str = "agent-7") -> str:
    operators = Operators(service.app)
    if not operators.is_registered(name):
        operators.add(name, "support", break_glass("tests"))
    return name


def act(service: Service, right: str, ids: list[str], request_id: str) -> dict[str, Any]:
    """A registered operator acts on a registered request of the first subject id."""
    operator = register_operator(service)
    privacy = Privacy(service)
    kind = "erasure" if right == "erase" else "objection"
    received = privacy.today()
    existing = service.db.execute(
        "SELECT 1 FROM gdpr_requests WHERE request_id = ?", (request_id,)
    )
    if not existing:
        privacy.open_request(ids[0], kind, received, request_id)
    result: dict[str, Any] = getattr(privacy, right)(ids, request_id, operator)
    return result


def test_p3_export_of_buyer_and_recipient_has_all_their_data_and_no_one_elses(
    memory_service: Service, clock: Any
) -> None:
    h = busy_history(memory_service, clock)
    doc = export(memory_service, h.alice_ids)
    [bought] = doc["cards_bought"]
    assert (bought["card_id"], bought["order_id"]) == (h.alice_gift, "o-a1")
    assert (bought["buyer_email"], bought["buyer_name"]) == (ALICE_EMAIL, ALICE_NAME)
    assert bought["message"] == ALICE_MESSAGE and bought["has_recipient"] is True
    received = {r["card_id"]: r for r in doc["cards_received"]}
    assert set(received) == {h.bob_gift, h.cards[2]}
    assert received[h.bob_gift]["recipient_email"] == ALICE_EMAIL
    assert received[h.bob_gift]["message"] == BOB_MESSAGE  # sent to her: she has it already
    assert received[h.bob_gift]["status"] == "redeemed"
    assert received[h.cards[2]]["status"] == "expired"
    assert [r["order_id"] for r in doc["redemptions"]] == ["shop-alice-1"]
    assert [r["returned_amount"] for r in doc["refunds"]] == [1000]
    assert [u["order_id"] for u in doc["unknown_code_attempts"]] == ["shop-alice-2"]
    text = orjson.dumps(doc).decode()
    # Nobody else's data: not Bob's email/name/id, not Bob's redemption of Alice's gift, not Carol.
    for other in (BOB_EMAIL, BOB_NAME, "cust-bob", "shop-bob-1", "cust-carol", CAROL_EMAIL,
                  h.bob_ids[1], "o-b1", "o-c1"):
        assert other not in text, other


def test_p2_erase_makes_pii_unreadable_everywhere_and_keeps_the_money(
    memory_service: Service, clock: Any
) -> None:
    h = busy_history(memory_service, clock)
    app = memory_service.app
    before = [app.show(UUID(c)) for c in h.cards]
    alice = [store_id(memory_service, i) for i in h.alice_ids]  # what the store names
    result = act(memory_service, "erase", h.alice_ids, "req-erase-1")
    assert result["keys_destroyed"] == 2 and result["already_erased"] is False
    assert result["cards_as_buyer"] == [h.alice_gift]
    assert set(result["cards_as_recipient"]) == {h.bob_gift, h.cards[2]}
    # Bob's message to Alice is sealed for both of them (P2): 1 + 1.
    assert result["fields_unreadable"] == {"buyer_email": 1, "buyer_name": 1, "message": 2,
                                           "recipient_email": 2, "recipient_name": 1}
    # Her customer id no longer leads to what the store keeps of her (P2: an end date) ...
    assert export(memory_service, h.alice_ids)["cards_bought"] == []
    # ... which, found by the store id, holds nothing readable.
    doc = export(memory_service, alice)
    bought = doc["cards_bought"][0]
    assert bought["buyer_email"] == bought["buyer_name"] == bought["message"] == ERASED
    assert doc["cards_received"] == []  # her e-mail no longer leads to them (P2)
    assert ALICE_EMAIL not in orjson.dumps(doc).decode()
    # Bob's view of Alice's gift: her message is gone, his own data is intact.
    bob = export(memory_service, h.bob_ids)
    gift = next(r for r in bob["cards_received"] if r["card_id"] == h.alice_gift)
    assert (gift["message"], gift["recipient_email"]) == (ERASED, BOB_EMAIL)
    assert bob["cards_bought"][0]["buyer_email"] == BOB_EMAIL
    assert [app.show(UUID(c)) for c in h.cards] == before


def test_p2_erasing_twice_is_harmless(memory_service: Service, clock: Any) -> None:
    h = busy_history(memory_service, clock)
    alice = store_id(memory_service, "cust-alice")
    first = act(memory_service, "erase", h.alice_ids, "req-1")
    again = act(memory_service, "erase", h.alice_ids, "req-1")
    assert again["replayed"] is True and first["replayed"] is False
    assert {**again, "replayed": False} == first  # the recorded outcome, not a second erasure
    other = act(memory_service, "erase", h.alice_ids, "req-2")
    assert other["already_erased"] is True and other["keys_destroyed"] == 0
    # Her customer id no longer resolves: nothing found, nothing recorded under it again.
    assert first["cards_as_buyer"] and other["cards_as_buyer"] == []
    erasures = export(memory_service, [alice, h.alice_ids[1]])["rights_exercised"]
    # One per subject id and request, not one per call: the store id's (req-1) and the
    # recipient pseudonym's (req-1, req-2).
    assert len(erasures) == 3


def test_p2_erasure_is_published_without_pii_as_subject_erased(
    memory_service: Service, clock: Any
) -> None:
    h = busy_history(memory_service, clock)
    alice = published(memory_service, "cust-alice")  # the erasure ends the link
    act(memory_service, "erase", h.alice_ids, "req-9")
    act(memory_service, "object", ["cust-bob"], "req-10")
    app = memory_service.app
    envelopes = [stored_envelope(app.mapper, n, app.pseudonyms)
                 for n in app.recorder.select_notifications(1, 10_000)]
    subject = [e for e in envelopes if e and e["event_type"].startswith("Subject")]
    cus = memory_service.pseudonyms.subject  # P5: subject ids leave as keyed pseudonyms
    assert [(e["event_type"], e["data"]["subject_id"]) for e in subject] == [
        ("SubjectErased", alice),
        ("SubjectErased", cus(h.alice_ids[1])),
        ("SubjectObjectedToProfiling", published(memory_service, "cust-bob")),
    ]
    # P2: one request erasing two ids of a person publishes two unrelated
    # references, so the stream cannot link a customer id to a recipient pseudonym.
    references = [e["correlation_id"] for e in subject]
    assert len(set(references)) == 3 and not {"req-9", "req-10"} & set(references)
    assert {e["data"]["request_id"] for e in subject} == set(references)
    assert subject[0]["card_id"] is None and subject[0]["terms_version"] == "GDPR"
    assert ALICE_EMAIL not in orjson.dumps(subject).decode()
    on_the_stream = orjson.dumps(subject).decode()
    assert not [i for i in ("cust-alice", "cust-bob", h.alice_ids[1]) if i in on_the_stream]


def test_p4_objection_is_recorded_once_per_request(memory_service: Service) -> None:
    assert act(memory_service, "object", ["cust-x"], "obj-1")["results"][0]["recorded"] is True
    assert act(memory_service, "object", ["cust-x"], "obj-1")["replayed"] is True
    rights = export(memory_service, ["cust-x"])["rights_exercised"]
    assert [r["type"] for r in rights] == ["ObjectedToProfiling"]


def test_r21_every_decryption_is_logged_with_operator_and_purpose(
    memory_service: Service, clock: Any
) -> None:
    h = busy_history(memory_service, clock)
    privacy = Privacy(memory_service)
    register_operator(memory_service, "dpo-1")

    def log(subject: str) -> list[dict[str, Any]]:
        reader = PiiReader(memory_service, "dpo-1", "review", "test")
        entries: list[dict[str, Any]] = privacy.access_log(subject, reader)["entries"]
        return [e for e in entries if e["operator"] != "dpo-1"]

    assert log("cust-alice") == []
    export(memory_service, h.alice_ids, operator="agent-7")
    mine = log("cust-alice")
    assert sorted(e["field"] for e in mine) == ["buyer_email", "buyer_name", "export",
                                                "message"]
    assert {(e["operator"], e["purpose"]) for e in mine} == {("agent-7", "access request")}
    # Bob's message, shown to Alice as its recipient, is logged as an access to Bob's data.
    assert [e["field"] for e in log("cust-bob")] == ["message"]


def test_r21_showing_pii_needs_an_operator(memory_service: Service) -> None:
    with pytest.raises(DomainError) as refused:
        PiiReader(memory_service, "  ", "access request", "test")
    assert refused.value.code == "operator_required"


def test_p2_erasure_refuses_a_registered_request_of_another_subject(
    memory_service: Service,
) -> None:
    privacy = Privacy(memory_service)
    operator = register_operator(memory_service)
    privacy.open_request("cust-bob", "erasure", date(2026, 1, 10), "req-bob")
    with pytest.raises(DomainError) as refused:
        privacy.erase(["cust-alice"], "req-bob", operator)
    assert refused.value.code == "request_mismatch"
    assert privacy.erase(["cust-bob"], "req-bob", operator)["request_id"] == "req-bob"


def test_p1_register_open_extend_close_and_overdue(memory_service: Service, clock: Any) -> None:
    clock.set("2027-01-31T09:00:00Z")
    privacy = Privacy(memory_service)
    opened = privacy.open_request("cust-a", "access", date(2027, 1, 31), "r1")
    assert opened["due_on"] == "2027-03-01" and opened["status"] == "open"
    privacy.open_request("cust-b", "portability", date(2027, 1, 20), "r2")
    assert privacy.open_request("cust-a", "access", date(2027, 1, 31), "r1")["replayed"] is True
    with pytest.raises(DomainError):
        privacy.open_request("cust-z", "access", date(2027, 1, 31), "r1")
    overdue = privacy.list_requests(overdue=True, as_of=date(2027, 3, 1))
    assert [r["request_id"] for r in overdue["requests"]] == ["r2"]  # due 22 Feb (Monday)
    overdue = privacy.list_requests(overdue=True, as_of=date(2027, 3, 2))
    assert [r["request_id"] for r in overdue["requests"]] == ["r2", "r1"]
    extended = privacy.extend("r1", 1, "many requests this month")
    assert extended["due_on"] == "2027-03-30" and extended["extension_months"] == 1
    assert privacy.extend("r1", 1, "still complex")["due_on"] == "2027-04-28"
    with pytest.raises(DomainError) as refused:
        privacy.extend("r1", 1, "more")
    assert refused.value.code == "extension_limit"
    closer = PiiReader(memory_service, register_operator(memory_service), "t", "close")
    privacy.close("r2", "answered by e-mail", closer)
    listed = privacy.list_requests(overdue=True, as_of=date(2027, 3, 2))["requests"]
    assert [r["request_id"] for r in listed] == []


def test_p1_extension_must_be_decided_within_the_first_month(
    memory_service: Service, clock: Any
) -> None:
    clock.set("2027-03-02T09:00:00Z")
    privacy = Privacy(memory_service)
    privacy.open_request("cust-a", "erasure", date(2027, 1, 31), "r1")  # due 1 March
    with pytest.raises(DomainError) as refused:
        privacy.extend("r1", 1, "complex")
    assert refused.value.code == "extension_too_late"
    with pytest.raises(DomainError) as future:
        privacy.open_request("cust-a", "access", date(2027, 3, 3), "r2")
    assert future.value.code == "invalid_date"
