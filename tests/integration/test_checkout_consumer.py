"""The checkout consumer on the real broker and both stores: commands, results, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import ProcessRecorder
from eventsourcing.utils import get_topic

from application.commands import PurchaseCard
from domain.delivery import CodeDelivery
from domain.giftcard import GiftCard
from domain.streams import CheckoutAttempts
from infra.bootstrap import Service
from infra.db import Database
from infra.kafka.topics import Topics
from projections import queries
from projections.config import FraudConfig
from projections.runner import Projector
from projections.sources import sync_store
from tests.conftest import FixedClock
from tests.integration.kafka_helpers import (
    TopicReader,
    produce,
    running_consumer,
)
from tests.mail.inbox import SmtpServer, message_parts, smtp_server, text_of
from tests.store_ids import published as published_subject

__all__ = ["smtp_server"]  # the fixture

AT = "2026-01-12T09:00:00Z"
BUYER = {"customer_id": "cust-42", "email": "alice.secret@example.com", "name": "Alice Zyxwv"}
RECIPIENT = {"email": "bob.hidden@example.org", "name": "Bob Qwerty"}
PERSONAL = "Joyeux anniversaire, signed Alice"
RETURNING = {"customer_id": "cust-7", "email": "carl.returns@example.net"}


def ordered(message_id: str, order_id: str, amount: int = 5000, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "message_id": message_id,
            "type": "GiftCardOrdered",
            "occurred_at": AT,
            "order_id": order_id,
            "market": "FR",
            "amount": amount,
            "currency": "EUR",
            "payment_method": "card",
            "buyer": BUYER,
            "recipient": RECIPIENT,
            "message": PERSONAL,
            **extra,
        }
    )


def completed(message_id: str, order_id: str, code: str, total: int = 3000) -> bytes:
    return orjson.dumps(
        {
            "message_id": message_id,
            "type": "CheckoutCompleted",
            "occurred_at": AT,
            "order_id": order_id,
            "market": "FR",
            "customer_id": "cust-7",
            "order_total": total,
            "currency": "EUR",
            "gift_card_code": code,
            "promo_codes": [],
            "contains_gift_cards": False,
        }
    )


@pytest.fixture
def results(kafka_bootstrap: str, topics: Topics) -> Iterator[TopicReader]:
    reader = TopicReader(kafka_bootstrap, topics.results)
    yield reader
    reader.close()


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["message_id"]: item for item in items}


def count_events(service: Service, event_class: type) -> int:
    topic = get_topic(event_class)
    return len(service.app.recorder.select_notifications(1, 10_000, topics=[topic]))


def test_r3_r7_r17_r19_four_message_types_become_commands_with_results(
    service: Service,
    env_for: dict[str, str],
    clock: FixedClock,
    kafka_bootstrap: str,
    topics: Topics,
    results: TopicReader,
    smtp_server: SmtpServer,
) -> None:
    with running_consumer(env_for, clock, kafka_bootstrap, topics, smtp_server):
        produce(kafka_bootstrap, topics.checkout, [ordered("m1", "order-1"), ordered("m2", "o-2")])
        bought = by_id(results.until(2))
        card1, card2 = bought["m1"]["card_id"], bought["m2"]["card_id"]
        assert bought["m1"] == {
            "message_id": "m1",
            "type": "GiftCardOrdered",
            "order_id": "order-1",
            "status": "accepted",
            "reason": None,
            "card_id": card1,
            "amount": 5000,
            "currency": "EUR",
            "market": "FR",
            "expires_at": "2026-07-12T10:00:00Z",
        }
        sent = smtp_server.wait_for_cards(2)
        assert set(sent) == {card1, card2}  # R7: the code goes to the buyer, not Kafka
        follow_ups = [
            completed("m3", "shop-9", sent[card1], total=3000),
            orjson.dumps(
                {
                    "message_id": "m4",
                    "type": "OrderItemsReturned",
                    "occurred_at": AT,
                    "order_id": "shop-9",
                    "market": "FR",
                    "returned_amount": 2000,
                    "received_on": "2026-01-12",
                    "customer": RETURNING,  # R17: the refund card is theirs
                }
            ),
            orjson.dumps(
                {
                    "message_id": "m5",
                    "type": "GiftCardCancellationRequested",
                    "occurred_at": AT,
                    "order_id": "o-2",  # R20: the purchase order AND the code
                    "code": sent[card2],
                }
            ),
        ]
        # One key: the three must be applied in this order (same partition).
        produce(kafka_bootstrap, topics.checkout, follow_ups, key=b"shop-9")
        done = by_id(results.until(5))
        sent = smtp_server.wait_for_cards(3)
        received = smtp_server.wait_for(6)
    assert done["m3"]["status"] == "accepted", done["m3"]
    assert (done["m3"]["applied"], done["m3"]["remaining_to_pay"]) == (3000, 0)
    assert done["m4"]["status"] == "accepted", done["m4"]
    assert done["m4"]["to_new_card"] == 2000  # R17: refunded as a new card
    new_card = done["m4"]["new_card_id"]
    assert sent[new_card] != sent[card1]
    # R7: two e-mails per card to its owner; the refund card's names the order it refunds and
    # goes to the customer who returned the goods (R17), not to the gift's buyer.
    assert sorted(message_parts(m)[::2] for m in received) == sorted(
        (card, which) for card in (card1, card2, new_card) for which in ("card", "confirmation")
    )
    assert {str(m["To"]) for m in received if message_parts(m)[0] != new_card} == {
        BUYER["email"]}
    assert {str(m["To"]) for m in received if message_parts(m)[0] == new_card} == {
        RETURNING["email"]}
    refund_mail = next(m for m in received if message_parts(m)[::2] == (new_card, "card"))
    assert "shop-9" in text_of(refund_mail, "plain")
    assert done["m5"] == {
        "message_id": "m5",
        "type": "GiftCardCancellationRequested",
        "order_id": "o-2",
        "status": "accepted",
        "reason": None,
        "card_id": card2,
        "currency": "EUR",
        "refunded": 5000,
    }
    app = service.app
    assert app.show(UUID(card1)).status == "redeemed"
    assert app.show(UUID(card2)).status == "cancelled"
    assert app.show(UUID(new_card)).amount == 2000


def test_r3_same_message_twice_one_effect_two_identical_results(
    service: Service,
    env_for: dict[str, str],
    clock: FixedClock,
    kafka_bootstrap: str,
    topics: Topics,
    results: TopicReader,
) -> None:
    unknown = completed("m-unknown", "shop-1", "ABCDEF-GHJKMN-PQRSTU")
    with running_consumer(env_for, clock, kafka_bootstrap, topics):
        produce(kafka_bootstrap, topics.checkout, [ordered("m1", "order-1")] * 2 + [unknown] * 2)
        replies = results.until(4)
    first, second = [r for r in replies if r["message_id"] == "m1"]
    assert first == second and first["status"] == "accepted"
    refused = [r for r in replies if r["message_id"] == "m-unknown"]
    assert refused[0] == refused[1]
    assert refused[0]["reason"] == "unknown_code"
    assert count_events(service, GiftCard.Purchased) == 1
    assert count_events(service, CodeDelivery.CodeSealed) == 1  # one code to e-mail
    tried = CheckoutAttempts.UnknownCodeTried
    assert count_events(service, tried) == 1


def test_r1_r2_refusals_are_rejected_results_with_the_error_code(
    service: Service,
    env_for: dict[str, str],
    clock: FixedClock,
    kafka_bootstrap: str,
    topics: Topics,
    results: TopicReader,
) -> None:
    inputs = [
        ordered("low", "o-low", amount=1999),
        ordered("bnpl", "o-bnpl", payment_method="klarna"),
        ordered("ok", "o-ok", amount=2000),
    ]
    with running_consumer(env_for, clock, kafka_bootstrap, topics):
        produce(kafka_bootstrap, topics.checkout, inputs, key=b"same-partition")
        replies = by_id(results.until(3))
    assert replies["low"]["status"] == "rejected"
    assert replies["low"]["reason"] == "amount_out_of_range"
    assert replies["bnpl"]["reason"] == "payment_method_not_allowed"
    assert replies["ok"]["status"] == "accepted"
    # The tracking record holds the offset after the last message of the partition.
    recorder = cast(ProcessRecorder, service.app.recorder)
    partition = next(p for p in range(2) if recorder.max_tracking_id(f"{topics.checkout}#{p}"))
    assert recorder.max_tracking_id(f"{topics.checkout}#{partition}") == 3


def test_p5_results_carry_no_code_and_no_clear_personal_data(
    service: Service,
    env_for: dict[str, str],
    clock: FixedClock,
    kafka_bootstrap: str,
    topics: Topics,
    results: TopicReader,
    smtp_server: SmtpServer,
) -> None:
    with running_consumer(env_for, clock, kafka_bootstrap, topics, smtp_server):
        produce(kafka_bootstrap, topics.checkout, [ordered(f"m{i}", f"o-{i}") for i in range(3)])
        results.until(3)
        codes = list(smtp_server.wait_for_cards(3).values())
        produce(
            kafka_bootstrap,
            topics.checkout,
            [completed(f"r{i}", f"shop-{i}", code) for i, code in enumerate(codes)],
        )
        results.until(6)
    blob = b"\n".join(results.raw)
    secrets = [*codes, BUYER["email"], BUYER["name"], RECIPIENT["email"], RECIPIENT["name"]]
    for secret in [*secrets, PERSONAL, *(c.replace("-", "") for c in codes)]:
        assert secret.encode() not in blob


def test_r8_f1_guessing_through_kafka_is_locked_out_and_alerted(
    service: Service,
    env_for: dict[str, str],
    clock: FixedClock,
    kafka_bootstrap: str,
    topics: Topics,
    results: TopicReader,
    tmp_path: Path,
) -> None:
    limit = service.app.markets.guessing.max_unknown_codes
    card = service.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="b", order_id="o-real",
    ))
    guesses = [completed(f"g-{i}", f"shop-{i}", f"ABCDEF-GHJKMN-PQR{i:03d}") for i in range(19)]
    # The 20th message carries the real code: during the lock-out it is refused alike.
    assert card.code is not None
    inputs = [*guesses, completed("g-19", "shop-19", card.code)]
    with running_consumer(env_for, clock, kafka_bootstrap, topics):
        produce(kafka_bootstrap, topics.checkout, inputs, key=b"one-partition")
        replies = by_id(results.until(20))
    reasons = [replies[f"g-{i}"]["reason"] for i in range(20)]
    assert reasons == ["unknown_code"] * limit + ["too_many_attempts"] * (20 - limit)
    assert {r["status"] for r in replies.values()} == {"rejected"}
    assert service.app.show(card.card_id).status == "active"
    views = Projector(Database(f"sqlite:///{tmp_path / 'views.sqlite3'}"), FraudConfig())
    sync_store(service.app, views)
    (alert,) = queries.alerts(views.db, rule="F1")["alerts"]
    # P5: the views hold the pseudonym of the customer's store id, never the id itself.
    published = published_subject(service, "cust-7")
    assert alert["customer_id"] == published and len(alert["event_ids"]) == 20
    assert f"and {20 - limit} refused unchecked" in alert["explanation"]
