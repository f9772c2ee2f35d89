"""The checkout consumer SIGKILLed while batches of purchases are in flight: a card is committed
with the vault key of its sealed code (and its buyer's and recipient's field keys) or not at
all, so no card is left without its key and no key without its card."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from uuid import UUID

import orjson
import pytest
from eventsourcing.utils import get_topic

from application.card_base import delivery_key_subject
from dev.services import unique_topic_prefix
from domain.delivery import CodeDelivery
from domain.giftcard import GiftCard
from infra.bootstrap import build
from infra.config import load_settings
from infra.db import Database
from infra.kafka.topics import Topics
from infra.vault_keys import ERASED
from tests.faults.harness import ServiceProcess
from tests.integration.kafka_helpers import create_topics, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

# Two transactions per partition at least (the consumer commits up to 1,000 messages of a
# partition at once), so that kills land between batches more than once.
ORDERS = 4000
BUYERS = 40  # each buyer's e-mail and name fields get a key the first time (field keys)
# Each kill lands this long after a batch was seen committed: inside the next batch's work
# (reading keys, sealing, its commit), at different points of it.
KILL_DELAYS_S = (0.0, 0.1, 0.3)
CODE_KEY_PREFIX = delivery_key_subject(UUID(int=0)).removesuffix(str(UUID(int=0)))


def order(i: int) -> bytes:
    buyer = i % BUYERS
    return orjson.dumps({
        "message_id": f"kill-buy-{i}",
        "type": "GiftCardOrdered",
        "occurred_at": "2026-01-12T09:00:00Z",
        "order_id": f"kill-order-{i}",
        "market": "FR",
        "amount": 5000,
        "currency": "EUR",
        "payment_method": "card",
        "buyer": {"customer_id": f"kill-cust-{buyer}", "email": f"buyer{buyer}@example.org",
                  "name": f"Buyer {buyer}"},
        "recipient": {"email": f"friend{i % 7}@example.org", "name": "A Friend"},
    })


def purchased_cards(db: Database, events: str) -> set[str]:
    rows = db.execute(f"SELECT originator_id FROM {events} WHERE topic = ?",
                      (get_topic(GiftCard.Purchased),))
    return {card_id(row[0]) for row in rows}


def card_id(stored: object) -> str:
    """A stored originator id as a UUID string (SQLite stores its hex digits)."""
    return str(stored if isinstance(stored, UUID) else UUID(str(stored)))


def cards_and_keys(db: Database, events: str) -> tuple[set[str], set[str]]:
    """Both sets in ONE statement, so one snapshot: a commit the killed consumer sent just before
    its kill may land on the server between two reads, and must not look like a half batch."""
    rows = db.execute(
        f"SELECT 'card', CAST(originator_id AS TEXT) FROM {events} WHERE topic = ? "
        "UNION ALL SELECT 'key', subject_id FROM subject_keys WHERE subject_id LIKE ? "
        "AND wrapped_key IS NOT NULL",
        (get_topic(GiftCard.Purchased), CODE_KEY_PREFIX + "%"),
    )
    cards = {card_id(r[1]) for r in rows if r[0] == "card"}
    keys = {str(r[1]).removeprefix(CODE_KEY_PREFIX) for r in rows if r[0] == "key"}
    return cards, keys


def wait_for_more_cards(db: Database, events: str, than: int, consumer: ServiceProcess) -> int:
    deadline = time.monotonic() + 120
    while (count := len(purchased_cards(db, events))) <= than:
        assert consumer.alive(), consumer.log_tail()
        assert time.monotonic() < deadline, f"no card committed past {than}"
        time.sleep(0.01)
    return count


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_r7_checkout_consumer_killed_mid_batch_leaves_no_card_without_its_key_nor_key_without_card(
    env_for: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics)
    env = {**env_for, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "GIFTCARDS_TOPIC_PREFIX": topics.prefix}
    produce(kafka_bootstrap, topics.checkout, [order(i) for i in range(ORDERS)])
    service = build(load_settings(env))
    db = service.db
    events = service.app.recorder.events_table_name
    consumer = ServiceProcess(
        # Static membership: each restart takes its partitions back without a rebalance wait.
        ["consume", "checkout", "--instance-id", "killed-consumer"], env, tmp_path / "consumer.log")
    kills = 0
    try:
        committed = 0
        for delay in KILL_DELAYS_S:
            consumer.start()
            committed = wait_for_more_cards(db, events, committed, consumer)
            if committed >= ORDERS:
                break
            time.sleep(delay)
            consumer.kill()
            kills += 1
            cards, keys = cards_and_keys(db, events)
            assert cards - keys == set(), "cards committed without the key of their code"
            assert keys - cards == set(), "code keys committed without their card"
            committed = len(cards)
            if committed >= ORDERS:  # the kill came after the last batch
                break
        if not consumer.alive():
            consumer.start()
        deadline = time.monotonic() + 120
        while len(purchased_cards(db, events)) < ORDERS and time.monotonic() < deadline:
            assert consumer.alive(), consumer.log_tail()
            time.sleep(0.05)
        # A consumer restarted after the last batch was already committed may be stopped before
        # its start is done: it then ends by the signal, having done nothing.
        assert consumer.terminate() in (0, -signal.SIGTERM), consumer.log_tail()
    finally:
        consumer.kill()
    assert kills >= 2, "the consumer finished before it could be killed mid-batch twice"
    cards, keys = cards_and_keys(db, events)
    assert len(cards) == ORDERS  # one card per order, none twice (R3)
    assert cards == keys
    # Cards' sealed codes, e-mails and names open with the keys committed with them (a sample:
    # every key's presence is checked above).
    vault = service.vault
    for card_id in sorted(cards)[::20]:
        delivery = service.app.repository.get(CodeDelivery.id_for(UUID(card_id)))
        assert isinstance(delivery, CodeDelivery)
        assert vault.open(delivery_key_subject(UUID(card_id)), delivery.sealed_code) != ERASED
        card = service.app.repository.get(UUID(card_id))
        assert isinstance(card, GiftCard) and card.buyer_subject
        for name in ("buyer_email", "buyer_name"):
            assert vault.open(card.buyer_subject, card.pii[name]) != ERASED, name
        recipient = card.pii["recipient_subject"]
        assert vault.open(recipient, card.pii["recipient_email"]) != ERASED
    service.close()
