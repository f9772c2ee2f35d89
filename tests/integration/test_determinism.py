"""Views built live, rebuilt from the store and rebuilt from Kafka are identical, row for row;
a tampered stored event makes `audit verify` name the card and version."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any
from uuid import UUID

from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from dev.services import unique_topic_prefix
from domain.errors import DomainError
from infra.bootstrap import Service
from infra.db import Database
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from projections import schema
from projections.config import FraudConfig
from projections.runner import Projector
from projections.sources import sync_kafka, sync_store
from projections.verify import verify_card

COMMANDS = 6000  # about 2,700 cards, the rest refusals, payments, refunds, cancellations
CONFIG = FraudConfig(
    f1_unknown_codes=3, f1_window_minutes=1440, f2_cards=3, f4_depth=2, f3_minutes=60
)


def views_db(service: Service, tmp_path: Path, name: str) -> Projector:
    if service.db.is_postgres:
        from dev.services import fresh_postgres_database

        return Projector(Database(fresh_postgres_database(service.db.url)), CONFIG)
    return Projector(Database(f"sqlite:///{tmp_path / name}"), CONFIG)


def attempt(command: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return command(*args, **kwargs)
    except DomainError:
        return None


def random_history(service: Service, clock: Any, live: Projector, seed: int = 42) -> None:
    """Every command, refused ones included, in group commits; the live runner runs between."""
    app, rng = service.app, random.Random(seed)
    cards: list[tuple[UUID, str | None, str]] = []  # id, code, market
    used: list[tuple[str, int, str]] = []
    for round_ in range(COMMANDS // 100):
        with app.batch() as uow:
            for i in range(100):
                clock.advance(minutes=rng.randint(1, 40))
                n = round_ * 100 + i
                roll = rng.random()
                if roll < 0.55 or not cards:
                    card = attempt(app.purchase, PurchaseCard(
                        market=rng.choice(["FR", "DE", "GB"]),
                        amount=rng.choice([1000, 2000, 5000, 30000, 50000]),
                        payment_method=rng.choice(["card"] * 9 + ["bnpl"]),
                        buyer_id=f"buyer-{rng.randint(0, 300)}", order_id=f"buy-{n}",
                    ), within=uow)
                    if card:
                        cards.append((card.card_id, card.code, card.card.market))
                elif roll < 0.8:
                    _, code, market = rng.choice(cards)
                    order = f"pay-{n}"
                    guessing = rng.random() < 0.1
                    done = attempt(app.redeem, RedeemCard(
                        code=f"GUESS{n}" if guessing else code,
                        market=market if rng.random() < 0.9 else "IT", order_id=order,
                        order_total=rng.choice([500, 5000, 60000]),
                        customer_id="guesser" if guessing else f"cust-{rng.randint(0, 50)}",
                        source="test",
                    ), within=uow)
                    if done and done.applied:
                        used.append((order, done.applied, market))
                elif roll < 0.88 and used:
                    order, paid, market = rng.choice(used)
                    new = attempt(app.refund, RefundOrder(
                        order_id=order, returned_amount=rng.randint(1, paid),
                        received_on=clock.now.date(),
                    ), within=uow)
                    if new and new.new_card:
                        cards.append((new.new_card.card_id, new.new_card.code, market))
                else:
                    attempt(app.cancel, CancelCard(card_id=rng.choice(cards)[0]), within=uow)
        if round_ % 4 == 3:
            sync_store(app, live, batch_size=rng.randint(50, 700))
    clock.advance(days=200)
    app.expire()
    sync_store(app, live)


def publish(service: Service, bootstrap: str, topics: Topics) -> int:
    """The real relay publishes the store to Kafka (6 partitions, so order matters per key)."""
    ensure_topics(bootstrap, topics, partitions=6)
    relay = Relay(service, bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        return relay.drain()
    finally:
        relay.close()


def test_views_identical_live_store_and_kafka(service, clock, tmp_path, kafka_bootstrap):
    live = views_db(service, tmp_path, "live.db")
    random_history(service, clock, live)
    from_store = views_db(service, tmp_path, "store.db")
    sync_store(service.app, from_store)
    topics = Topics(unique_topic_prefix())
    topic = topics.events
    sent = publish(service, kafka_bootstrap, topics)
    from_kafka = views_db(service, tmp_path, "kafka.db")
    applied = sync_kafka(kafka_bootstrap, topic, from_kafka)
    expected = schema.dump(from_store.db)
    assert len(expected["view_balance"]) > 2500
    assert applied == sent
    assert schema.dump(live.db) == expected
    assert schema.dump(from_kafka.db) == expected
    rules = {r[1] for r in expected["view_fraud_alerts"]}
    assert rules == {"F1", "F2", "F3", "F4", "F5", "F6"}


def test_tampered_stored_event_fails_audit_verify_naming_card_and_version(service, clock,
                                                                          tmp_path):
    app = service.app
    card = app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="b", order_id="o-1",
    ))
    app.redeem(RedeemCard(
        code=card.code, market="FR", order_id="r-1", order_total=2000, customer_id="c",
        source="test",
    ))
    views = views_db(service, tmp_path, "v.db")
    sync_store(app, views)
    cid = card.card_id
    assert verify_card(app, views.db, cid) == (3, [])
    table = "giftcards_events" if service.db.is_postgres else "stored_events"
    rows = service.db.execute(
        f"SELECT originator_version, state FROM {table} WHERE originator_id = ? "
        "ORDER BY originator_version", [cid.hex if not service.db.is_postgres else cid])
    version, state = rows[2]
    state = bytes(state)
    assert b'"applied":2000' in state
    service.db.execute(
        f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
        [state.replace(b'"applied":2000', b'"applied":1000'),
         cid.hex if not service.db.is_postgres else cid, version])
    events, problems = verify_card(app, views.db, cid)
    assert events == 3
    assert {(p["card_id"], p["version"]) for p in problems} == {(str(card.card_id), 3)}
    assert any("differs from the one recorded" in p["problem"] for p in problems)  # the chain
