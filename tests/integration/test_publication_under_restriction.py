"""Publication to analytics under restriction (art. 18) and objection (P4): the subject's new
events reach `giftcard.events` with a one-off pseudonym per event, never linkable to their
earlier events or to each other; their lifted restriction links them again."""

from __future__ import annotations

from typing import Any

from application.privacy import Privacy
from dev.services import unique_topic_prefix
from infra.bootstrap import Service
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from tests.integration.test_relay import read_committed, refused
from tests.store_ids import published as published_subject
from tests.unit.rules_helpers import buy, pay
from tests.unit.test_gdpr_privacy import register_operator


def redeemers(records: list[Any]) -> list[tuple[str, str]]:
    return [(r[3]["occurred_at"], r[3]["data"]["customer_id"]) for r in records
            if r[3]["event_type"] in ("GiftCardRedeemed", "CheckoutUnknownCodeTried")]


def test_art18_p4_a_restricted_or_objecting_subjects_new_events_are_published_unlinked(
    service: Service, kafka_bootstrap: str, clock: Any
) -> None:
    app = service.app
    topics = Topics(unique_topic_prefix())
    ensure_topics(kafka_bootstrap, topics, 1)
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}r")
    bob = published_subject(service, "cust-bob")
    cards = [buy(app, buyer_id="cust-alice", amount=5000) for _ in range(5)]
    pay(app, cards[0].code, "shop-1", 100, customer_id="cust-bob")
    privacy, operator = Privacy(service), register_operator(service)
    privacy.open_request("cust-bob", "restriction", privacy.today(), "res-bob")
    try:
        relay.drain()  # a relay that ran before the restriction, then restarts after it
        clock.advance(minutes=1)
        privacy.restrict(["cust-bob"], "res-bob", operator)
        clock.advance(minutes=1)
        pay(app, cards[1].code, "shop-2", 100, customer_id="cust-bob")
        refused(pay, app, "NOPE-NOPE-NOPE-NOPE", "shop-3", 100, customer_id="cust-bob")
        relay.drain()
        restarted = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}r")
        relay.close()
        relay = restarted
        clock.advance(minutes=1)
        pay(app, cards[2].code, "shop-4", 100, customer_id="cust-bob")
        relay.drain()
        clock.advance(minutes=1)
        privacy.unrestrict(["cust-bob"], "res-bob", operator)
        privacy.open_request("cust-bob", "objection", privacy.today(), "obj-bob")
        clock.advance(minutes=1)
        pay(app, cards[3].code, "shop-5", 100, customer_id="cust-bob")
        privacy.object(["cust-bob"], "obj-bob", operator)
        clock.advance(minutes=1)
        pay(app, cards[4].code, "shop-6", 100, customer_id="cust-bob")
        relay.drain()
    finally:
        relay.close()

    published = [pseudonym for _, pseudonym in redeemers(read_committed(
        kafka_bootstrap, topics.events))]
    assert len(published) == 6
    before, restricted, lifted, objected = published[0], published[1:4], published[4], published[5]
    assert before == bob and lifted == bob  # before the restriction, and after it was lifted
    for one_off in [*restricted, objected]:
        assert one_off != bob and one_off.startswith("cus_")
    assert len(set(restricted)) == 3  # not linkable to each other either
