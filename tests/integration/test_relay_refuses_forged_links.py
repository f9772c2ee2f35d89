"""The relay publishes no event whose chain link the application did not seal: a forgery by a
database insider (a hash recomputed by the public formula, no chain key) stops it, with an
alert, a status and a stable code, and nothing past it reaches Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from application.commands import PurchaseCard, RedeemCard
from infra.bootstrap import Service
from infra.kafka.links import ForgedLinkError, refused_links
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from tests.integration.test_chain_key_forgery import forger, thirty_euro_card
from tests.integration.test_relay import read_committed
from tests.integration.test_topic_contract import giftcards, kafka_env


@pytest.mark.parametrize("forgers_key", [None, "own"])
def test_relay_refuses_to_publish_a_forged_redeemed_and_everything_after_it(
    service: Service, env_for: dict[str, str], clock: Any, tmp_path: Path,
    kafka_bootstrap: str, topics: Topics, forgers_key: str | None,
) -> None:
    card = thirty_euro_card(service)
    relay = Relay(service, kafka_bootstrap, topics,
                  transactional_id=topics.relay_transactional_id)
    try:
        before = relay.drain()
        assert before > 0
        other = forger(env_for, clock, tmp_path, forgers_key)
        try:  # the insider empties the card: a Redeemed hashed by the public formula
            other.app.redeem(RedeemCard(
                code=card.code, market="FR", order_id="O-F", order_total=3000, customer_id="x",
                source="test",
            ))
        finally:
            other.close()
        # A genuine purchase after the forgery: held back too (per-card order is global here).
        thirty = service.app.purchase(PurchaseCard(
            market="DE", amount=2000, payment_method="card", buyer_id="cust-b", order_id="P-AFTER",
        ))
        with pytest.raises(ForgedLinkError) as stopped:
            relay.drain()
    finally:
        relay.close()
    assert stopped.value.code == "relay_forged_link"
    assert stopped.value.card_id == str(card.card_id)
    published = read_committed(kafka_bootstrap, topics.events)
    assert len(published) == before  # nothing at or past the forgery
    assert all(e["card_id"] != str(thirty.card_id) for *_, e in published)
    # The alert, for `status` and `/metrics`: which relay, where, which card.
    refused = refused_links(service.db)[topics.relay_transactional_id]
    assert refused["card_id"] == str(card.card_id) and refused["position"] > 0
    # The CLI's one-shot relay says the same with the stable code, and publishes nothing.
    code, answer = giftcards(kafka_env(env_for, kafka_bootstrap, topics), "relay", "--once")
    assert code == 2 and answer["error"]["code"] == "relay_forged_link", answer
    assert str(card.card_id) in answer["error"]["message"]
    assert len(read_committed(kafka_bootstrap, topics.events)) == before
