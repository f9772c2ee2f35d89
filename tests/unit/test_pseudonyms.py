"""P5/R21: customer, subject and order ids leave as keyed pseudonyms."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from eventsourcing.utils import get_topic

from application.commands import AuthorizeHold, PurchaseCard, RedeemCard, VoidHold
from application.holds import Holds
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from application.privacy_scan import ORDER_FIELDS, SUBJECT_FIELDS
from domain.errors import DomainError
from domain.streams import CheckoutAttempts
from domain.subjects import DataSubject
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.envelope import (
    ALLOWED,
    CORRELATED_BY_ORDER,
    PSEUDONYMISED,
    published_events,
    stored_envelope,
)
from infra.pseudonyms import ORDER_PATTERN, SUBJECT_PATTERN, StreamPseudonyms
from tests.store_ids import published as published_subject
from tests.store_ids import store_id
from tests.unit.test_gdpr_privacy import act, busy_history, register_operator

NAMED_LIKE_AN_ID = re.compile(r"customer|subject|buyer|order")


def test_p5_every_field_naming_a_customer_or_order_is_pseudonymised_or_allowed() -> None:
    """A new published field named like a customer, subject, buyer or order id must be put in
    the envelope's table (pseudonymised) or in ALLOWED, by a decision, never by default."""
    unclassified = [
        f"{event_type}.{name}"
        for _, event_type, cls in published_events()
        for name in cls.model_fields
        if NAMED_LIKE_AN_ID.search(name) and name not in PSEUDONYMISED and name not in ALLOWED
    ]
    assert unclassified == []
    # The mapping command resolves over the same fields the envelope pseudonymises.
    assert set(SUBJECT_FIELDS) | {"recipient_subject"} == {
        k for k, v in PSEUDONYMISED.items() if v == "subject"}
    assert set(ORDER_FIELDS) - {"correlation_id"} == {
        k for k, v in PSEUDONYMISED.items() if v == "order"}


def envelopes(service: Service) -> list[dict[str, Any]]:
    app = service.app
    found = [stored_envelope(app.mapper, n, app.pseudonyms)
             for n in app.recorder.select_notifications(1, 10**6)]
    return [e for e in found if e is not None]


def test_p5_r21_no_customer_subject_or_order_id_in_clear_in_any_envelope(
    memory_service: Service, clock: Any
) -> None:
    """Fails on the code before the pseudonyms: every envelope carried them in clear."""
    h = busy_history(memory_service, clock)
    app = memory_service.app
    holds = Holds(app)
    card = app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="cust-dave", order_id="o-d1",
    ))
    with pytest.raises(DomainError):  # another market's card: a GiftCardRedemptionRefused
        app.redeem(RedeemCard(
            code=card.code, market="DE", order_id="shop-dave-0", order_total=9000,
            customer_id="cust-dave", source="test",
        ))
    holds.authorize(AuthorizeHold(
        code=card.code, market="FR", order_id="shop-dave-1", order_total=9000,
        customer_id="cust-dave", source="test",
    ))
    holds.void(VoidHold(order_id="shop-dave-1"))
    with pytest.raises(DomainError):  # an unknown code: a CheckoutUnknownCodeTried
        app.redeem(RedeemCard(
            code="NOPE-NOPE-NOPE", market="FR", order_id="shop-eve-1", order_total=100,
            customer_id="cust-eve", source="test",
        ))
    act(memory_service, "object", ["cust-bob"], "req-10")
    alice = published_subject(memory_service, "cust-alice")  # the erasure ends the link
    act(memory_service, "erase", h.alice_ids, "req-9")
    published = envelopes(memory_service)
    kinds = {e["event_type"] for e in published}
    assert {"GiftCardPurchased", "GiftCardRedeemed", "GiftCardRedemptionRefused",
            "GiftCardRefunded", "GiftCardHeld", "GiftCardHoldReleased",
            "CheckoutUnknownCodeTried", "SubjectErased", "SubjectObjectedToProfiling"} <= kinds
    text = orjson.dumps(published).decode()
    clear = [*h.alice_ids, *h.bob_ids, "cust-carol", "cust-dave", "cust-eve",
             "o-a1", "o-b1", "o-c1", "o-c2", "o-c3", "o-d1", "shop-bob-1", "shop-alice-1",
             "shop-alice-2", "shop-dave-0", "shop-dave-1", "shop-eve-1"]
    assert [i for i in clear if i in text] == []
    # Streams named after a customer are uuid5 of the id, computable by anyone: not published.
    named = {str(n.originator_id) for n in app.recorder.select_notifications(1, 10**6)
             if n.topic.startswith((get_topic(CheckoutAttempts), get_topic(DataSubject)))}
    assert named and [i for i in named if i in text] == []
    # What is there instead: equal ids, equal pseudonyms, of the published pattern.
    order = memory_service.pseudonyms.order

    def cus(customer_id: str) -> str:
        return published_subject(memory_service, customer_id)

    by_type = {e["event_type"]: e for e in published}
    assert by_type["GiftCardHeld"]["data"]["customer_id"] == cus("cust-dave")
    assert by_type["GiftCardHoldReleased"]["data"]["order_id"] == order("shop-dave-1")
    assert by_type["CheckoutUnknownCodeTried"]["data"]["customer_id"] == cus("cust-eve")
    assert by_type["SubjectObjectedToProfiling"]["data"]["subject_id"] == cus("cust-bob")
    gift = next(e for e in published if e["card_id"] == h.alice_gift
                and e["event_type"] == "GiftCardPurchased")
    assert gift["data"]["buyer_subject"] == alice
    assert gift["data"]["pii"]["recipient_subject"] == cus(h.bob_ids[1])
    assert gift["correlation_id"] == order("o-a1")
    for e in published:
        for name, kind in PSEUDONYMISED.items():
            value = e["data"].get(name)
            if value is not None:
                assert re.match(SUBJECT_PATTERN if kind == "subject" else ORDER_PATTERN, value)
        if e["event_type"].startswith(tuple(CORRELATED_BY_ORDER)):
            assert re.match(ORDER_PATTERN, e["correlation_id"])
        assert e["schema_version"] == 2


def test_p5_pseudonyms_need_the_key_and_keep_equality() -> None:
    one, other = StreamPseudonyms(b"k" * 32), StreamPseudonyms(b"j" * 32)
    assert one.subject("C1") == one.subject("C1") != one.subject("C2")
    assert one.subject("C1") != other.subject("C1")  # without the key, not computable
    assert one.subject("O1")[4:] != one.order("O1")[4:]  # kinds never share a pseudonym


def test_p5_the_stream_key_is_its_own_purpose(memory_service: Service) -> None:
    """Derived from the master for this purpose alone: not the subject-id (recipient) key."""
    from infra.secrets import Keys

    keys = Keys.from_master(memory_service.settings.master_key)
    assert len({keys.stream_pseudonym, keys.subject_hmac, keys.code_hmac,
                keys.key_wrapping}) == 4


def test_r21_the_mapping_needs_a_registered_operator_and_is_access_logged(
    memory_service: Service, clock: Any
) -> None:
    busy_history(memory_service, clock)
    privacy = Privacy(memory_service)
    for operator, code in ((None, "operator_required"), ("mallory", "unknown_operator")):
        with pytest.raises(DomainError) as refused:
            PiiReader(memory_service, operator, "pseudonym mapping", "gdpr pseudonym")  # type: ignore[arg-type]
        assert refused.value.code == code
    operator = register_operator(memory_service, "agent-7")
    reader = PiiReader(memory_service, operator, "pseudonym mapping for R1", "gdpr pseudonym")
    cus = published_subject(memory_service, "cust-carol")
    assert privacy.pseudonym_of(reader, customer_id="cust-carol")["pseudonym"] == cus
    # The stream's pseudonym is of the store id, which leads back to no customer id.
    assert privacy.resolve_pseudonym(cus, reader) == {
        "pseudonym": cus, "store_id": store_id(memory_service, "cust-carol")}
    order = memory_service.pseudonyms.order("shop-alice-1")
    assert privacy.resolve_pseudonym(order, reader)["order_id"] == "shop-alice-1"
    with pytest.raises(DomainError) as unknown:
        privacy.resolve_pseudonym(memory_service.pseudonyms.subject("nobody"), reader)
    assert unknown.value.code == "unknown_pseudonym"
    logged = memory_service.db.execute(
        "SELECT operator, subject_id, field, purpose FROM pii_access_log "
        "WHERE command = 'gdpr pseudonym'")
    assert ("agent-7", "cust-carol", "pseudonym", "pseudonym mapping for R1") in logged
    assert ("agent-7", "order:shop-alice-1", "pseudonym", "pseudonym mapping for R1") in logged
    assert len(logged) == 3
    # The subject's own access log shows it (asked by the clear id).
    log_reader = PiiReader(memory_service, operator, "access request", "gdpr access-log")
    entries = privacy.access_log("cust-carol", log_reader)["entries"]
    assert [e["command"] for e in entries].count("gdpr pseudonym") == 2


def test_p5_another_master_key_gives_other_pseudonyms(clock: Any) -> None:
    """Two deployments (or a test and production) never share pseudonyms."""
    from tests.conftest import SECRET

    other = build(load_settings({"GIFTCARDS_DATABASE_URL": "memory://",
                                 "GIFTCARDS_SECRET_KEY": SECRET[::-1]}), clock=clock)
    mine = build(load_settings({"GIFTCARDS_DATABASE_URL": "memory://",
                                "GIFTCARDS_SECRET_KEY": SECRET}), clock=clock)
    try:
        assert other.pseudonyms.subject("C1") != mine.pseudonyms.subject("C1")
    finally:
        other.close()
        mine.close()


def test_r21_a_listing_logged_by_pseudonym_is_in_the_subjects_access_log(
    memory_service: Service,
) -> None:
    """`fraud alerts` shows (and logs) the pseudonyms the views hold; the subject's access log
    and export, asked by the clear id, include those entries, under that id."""
    operator = register_operator(memory_service, "agent-7")
    listing = PiiReader(memory_service, operator, "fraud review", "fraud alerts")
    listing.note(memory_service.pseudonyms.subject("cust-carol"), "alerts")
    listing.flush()
    privacy = Privacy(memory_service)
    log_reader = PiiReader(memory_service, operator, "access request", "gdpr access-log")
    entries = privacy.access_log("cust-carol", log_reader)["entries"]
    assert ("fraud alerts", "alerts") in {(e["command"], e["field"]) for e in entries}
    export = privacy.export(["cust-carol"], log_reader)
    assert {e["subject_id"] for e in export["access_log"]} == {"cust-carol"}


def test_p4_p5_an_objection_through_the_application_still_stops_profiling(
    memory_service: Service, clock: Any, tmp_path: Any
) -> None:
    """The real path, no hand-made envelope: the objection's subject pseudonym meets the
    buyer's in the fraud view, so the objector is not profiled, and another buyer still is."""
    from infra.db import Database
    from projections import queries
    from projections.config import FraudConfig
    from projections.runner import Projector
    from projections.sources import sync_store

    app = memory_service.app
    views = Projector(Database(f"sqlite:///{tmp_path / 'views.sqlite3'}"),
                      FraudConfig(f2_cards=3, f2_total_minor=100_000))
    act(memory_service, "object", ["whale"], "req-obj")
    clock.advance(minutes=1)
    for buyer in ("whale", "shark"):
        for i in range(2):
            app.purchase(PurchaseCard(
                market="FR", amount=50_000, payment_method="card", buyer_id=buyer,
                order_id=f"o-{buyer}-{i}",
            ))
    sync_store(app, views)
    found = queries.alerts(views.db, rule="F2")["alerts"]
    assert [a["customer_id"] for a in found] == [published_subject(memory_service, "shark")]
