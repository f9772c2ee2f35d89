"""Tamper evidence: the hash chain written with the events and signed checkpoints catch any
change to the stored history (edit, deletion, insertion, reordering), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from dev.services import unique_topic_prefix
from domain.chain import link
from domain.errors import DomainError
from infra import checkpoints as cps
from infra.bootstrap import Service
from infra.chains import CARD_TOPIC_PREFIX
from infra.checkpoint_signer import every
from infra.kafka.admin import ensure_topics
from infra.kafka.copy import compare, published_cards
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from projections.verify import verify_store

KEY = Ed25519PrivateKey.generate()


def write_histories(service: Service, clock: Any) -> None:
    """Every card event type: purchase, activation, redemption, refusal, cancellation,
    refund to a new card, expiry (the fixture store's card histories)."""
    app = service.app
    a = app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="cust-a",
        buyer_email="a@example.org", message="Joyeux anniversaire", order_id="P-A",
    ))
    b = app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id="cust-b", order_id="P-B",
    ))
    app.purchase(PurchaseCard(
        market="DE", amount=10000, payment_method="card", buyer_id=None, order_id="P-C",
    ))
    clock.advance(days=1)
    app.redeem(RedeemCard(
        code=a.code, market="FR", order_id="O-A", order_total=8000, customer_id="cust-a",
        source="test",
    ))
    with pytest.raises(DomainError):
        app.redeem(RedeemCard(
            code=b.code, market="DE", order_id="O-B1", order_total=1000, customer_id="cust-x",
            source="test",
        ))
    clock.advance(days=2)
    app.cancel(CancelCard(card_id=b.card_id, order_id="P-B"))
    app.refund(RefundOrder(order_id="O-A", returned_amount=3000, received_on=date(2026, 1, 14)))
    clock.advance(days=200)
    app.expire()


def rows(service: Service) -> list[tuple[str, int, str, bytes]]:
    """Every stored card event: (card id, version, topic, state), card by card."""
    found = service.db.execute(
        "SELECT originator_id, originator_version, topic, state FROM " + table(service) + " "
        "ORDER BY originator_id, originator_version"
    )
    return [(str(UUID(str(r[0]))), int(r[1]), r[2], bytes(r[3])) for r in found
            if r[2].startswith(CARD_TOPIC_PREFIX)]


def table(service: Service) -> str:
    return str(service.app.recorder.events_table_name)  # type: ignore[attr-defined]


def stored_id(service: Service, card: str) -> str:
    """The card id as the store writes it (SQLite: 32 hex digits; PostgreSQL: a uuid)."""
    return card if service.db.is_postgres else UUID(card).hex


def sql(service: Service, statement: str, card: str, *params: Any) -> None:
    """`statement` with the card id as its last parameter, on the test's own store."""
    service.db.execute(statement, [*params, stored_id(service, card)])


def set_state(service: Service, card: str, version: int, state: dict[str, Any]) -> None:
    sql(service, f"UPDATE {table(service)} SET state = ? WHERE originator_version = ? AND "
        "originator_id = ?", card, orjson.dumps(state), version)


def set_version(service: Service, card: str, old: int, new: int) -> None:
    sql(service, f"UPDATE {table(service)} SET originator_version = ? WHERE originator_version = ? "
        "AND originator_id = ?", card, new, old)


def delete(service: Service, card: str, version: int) -> None:
    sql(service, f"DELETE FROM {table(service)} WHERE originator_version = ? AND originator_id = ?",
        card, version)


COPY: dict[str, Any] = {}  # the test's copy on giftcard.events, when it runs with Kafka


def found(service: Service, checkpoints: list[dict[str, Any]]) -> set[tuple[str, int | None]]:
    """(card, version) of every problem `audit verify --all` reports from the store: the
    chains, the checkpoints and, with Kafka, the copy on giftcard.events."""
    problems = verify_store(service.app, checkpoints)
    if COPY:
        problems += compare(service.app.recorder, service.app.mapper, COPY, service.pseudonyms)
    return {(p["card_id"], p["version"]) for p in problems}


def other(value: Any) -> Any:
    """A different value of the same kind: one character flipped, one added, one more key."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str) and value:
        return ("Q" if value[0] != "Q" else "R") + value[1:]
    if isinstance(value, dict):
        return {**value, "x": "y"}
    return "forged"


@pytest.fixture(params=["without Kafka", "with Kafka"])
def history(
    service: Service, clock: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[list[dict[str, Any]]]:
    """Every event type of the domain on several cards, then one signed checkpoint; with
    Kafka, every event relayed to giftcard.events first (the second copy)."""
    write_histories(service, clock)
    COPY.clear()
    if request.param == "with Kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        topics = Topics(unique_topic_prefix())
        ensure_topics(bootstrap, topics, 3)
        relay = Relay(service, bootstrap, topics, transactional_id=f"{topics.prefix}r")
        try:
            assert relay.drain() > 0
        finally:
            relay.close()
        COPY.update(published_cards(bootstrap, topics.events))
        assert compare(service.app.recorder, service.app.mapper, COPY, service.pseudonyms) == []
    checkpoint = cps.create(service.app.recorder, service.app.mapper, KEY, clock(),
                            tmp_path / "checkpoints")
    trusted, bad = cps.trusted(tmp_path / "checkpoints", KEY.public_key())
    assert bad == [] and trusted == [checkpoint]
    assert found(service, trusted) == set()
    yield trusted
    COPY.clear()


def test_every_field_of_every_stored_card_event_edited_in_turn_is_named(
    service: Service, history: list[dict[str, Any]]
) -> None:
    edits = 0
    for card, version, _, state in rows(service):
        fields = orjson.loads(state)
        for name, value in fields.items():
            set_state(service, card, version, {**fields, name: other(value)})
            assert (card, version) in found(service, history), (name, version)
            # Without any checkpoint the chain alone still names it.
            assert (card, version) in found(service, []), (name, version)
            edits += 1
        set_state(service, card, version, fields)
    assert edits > 150
    assert found(service, history) == set()


def test_deleted_event_is_named(service: Service, history: list[dict[str, Any]]) -> None:
    card, version, _, _ = next(r for r in rows(service) if r[1] == 2)
    delete(service, card, version)
    assert (card, 3) in found(service, history) or (card, 2) in found(service, history)
    # The last event deleted: only the checkpoint knows it was there.
    card = rows(service)[0][0]
    last = max(v for c, v, _, _ in rows(service) if c == card)
    delete(service, card, last)
    assert (card, last) in found(service, history)


def test_inserted_event_is_named(service: Service, history: list[dict[str, Any]]) -> None:
    card_rows = [r for r in rows(service) if r[0] == rows(service)[0][0]]
    card = card_rows[0][0]
    for _, version, _, _ in sorted(card_rows, key=lambda r: -r[1]):
        if version >= 2:
            set_version(service, card, version, version + 1)
    _, _, topic, state = card_rows[1]
    service.db.execute(
        f"INSERT INTO {table(service)} (originator_version, topic, state, originator_id) "
        "VALUES (?, ?, ?, ?)", [2, topic, state, stored_id(service, card)],
    )
    names = found(service, history)
    assert (card, 3) in names  # the original version 2, now after a forged one


def test_swapped_versions_are_named(service: Service, history: list[dict[str, Any]]) -> None:
    card = next(r for r in rows(service) if r[1] == 3)[0]
    set_version(service, card, 2, -1)
    set_version(service, card, 3, 2)
    set_version(service, card, -1, 3)
    names = found(service, history)
    assert (card, 2) in names or (card, 3) in names


def test_rewritten_chain_is_caught_by_an_older_checkpoint(
    service: Service, history: list[dict[str, Any]], clock: Any
) -> None:
    """The forger recomputes every hash after the edit: the chain is whole again, but the
    checkpoint signed before the edit (and before later events) names the card."""
    first = rows(service)[0]
    card = first[0]
    service.app.purchase(PurchaseCard(
        market="FR", amount=2500, payment_method="card", buyer_id="late", order_id="P-LATE",
    ))  # after the checkpoint: not yet checkpointed
    prev = None
    for cid, version, topic, state in rows(service):
        if cid != card:
            continue
        fields = orjson.loads(state)
        if version == 1:
            fields["amount"] = 900000
        fields["prev_hash"] = prev
        fields["event_hash"] = prev = link(prev, topic, {
            **fields, "originator_id": card, "originator_version": version})
        set_state(service, card, version, fields)
    last = max(v for c, v, _, _ in rows(service) if c == card)
    # Without the chain key the forger's links carry MACs of the old hashes: every one is named,
    # even before any checkpoint.
    rechained = {(card, v) for v in range(1, last + 1)}
    assert found(service, []) == rechained
    if COPY:  # the copy on Kafka names the very event and field
        problems = compare(service.app.recorder, service.app.mapper, COPY, service.pseudonyms)
        assert [(p["card_id"], p["version"]) for p in problems] == [(card, 1)]
        assert "data.amount" in problems[0]["problem"]
    assert found(service, history) == rechained


def test_checkpoint_signed_with_another_key_is_refused(
    service: Service, history: list[dict[str, Any]], tmp_path: Path, clock: Any
) -> None:
    stranger = Ed25519PrivateKey.generate()
    cps.create(service.app.recorder, service.app.mapper, stranger, clock(), tmp_path / "forged")
    trusted, bad = cps.trusted(tmp_path / "forged", KEY.public_key())
    assert trusted == [] and "not in the trusted key ring" in bad[0]["problem"]
    # A genuine checkpoint whose heads were rewritten: its root no longer matches.
    path = cps.paths(tmp_path / "checkpoints")[0]
    forged = orjson.loads(path.read_bytes())
    some = next(iter(forged["heads"]))
    forged["heads"][some][1] = "0" * 64
    path.write_bytes(orjson.dumps(forged))
    trusted, bad = cps.trusted(tmp_path / "checkpoints", KEY.public_key())
    assert trusted == [] and "Merkle root" in bad[0]["problem"]


def test_a_broken_store_is_not_signed(service: Service, history: list[dict[str, Any]],
                                      tmp_path: Path, clock: Any) -> None:
    card, version, _, state = rows(service)[0]
    set_state(service, card, version, {**orjson.loads(state), "amount": 900000})
    with pytest.raises(cps.CheckpointError) as refused:
        cps.create(service.app.recorder, service.app.mapper, KEY, clock(), tmp_path / "again")
    assert {(p["card_id"], p["version"]) for p in refused.value.problems} == {(card, version)}
    assert UUID(card)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_checkpoints_are_published_on_a_forever_retained_topic(
    service: Service, clock: Any, tmp_path: Path, kafka_bootstrap: str
) -> None:
    from infra.kafka.checkpoints import publish, published

    settings = service.settings.model_copy(
        update={"kafka_bootstrap": kafka_bootstrap, "topic_prefix": unique_topic_prefix()}
    )
    write_histories(service, clock)
    checkpoint = cps.create(service.app.recorder, service.app.mapper, KEY, clock(), tmp_path)
    publish(settings, checkpoint)
    copies = published(settings)
    assert [c["header"] for c in copies] == [checkpoint["header"]]
    assert cps.check({**copies[0], "heads": checkpoint["heads"]}, KEY.public_key()) is None
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        topic = Topics(settings.topic_prefix).checkpoints
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        assert described["topic"][topic]["retention.ms"]["value"] == "-1"
    finally:
        admin.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_signs_every_n_events_reading_only_the_new_ones(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    """The periodic checkpointer (`serve`'s part) signs after N new events; its incremental
    chains give the same checkpoint as a full recomputation."""
    import threading
    import time

    checkpointer = cps.Checkpointer(service.app.recorder, service.app.mapper)
    signed: list[dict[str, Any]] = []
    stop = threading.Event()

    def sign() -> None:
        signed.append(checkpointer.sign(KEY, clock(), tmp_path / "periodic"))
        if len(signed) == 2:
            stop.set()

    worker = threading.Thread(target=every, args=(checkpointer, sign, 6, 3600, stop, 0.05))
    worker.start()
    try:
        for round_ in (1, 2):  # 2 purchases: 4 card events and 4 index events stored
            for i in range(2):
                service.app.purchase(PurchaseCard(
                    market="FR", amount=2000, payment_method="card", buyer_id=f"b{i}",
                    order_id=f"N{round_}-{i}",
                ))
            deadline = time.monotonic() + 20
            while len(signed) < round_ and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(signed) == round_
    finally:
        stop.set()
        worker.join(timeout=30)
    assert signed[0]["header"]["position"] < signed[1]["header"]["position"]
    full = cps.create(service.app.recorder, service.app.mapper, KEY, clock(), tmp_path / "full")
    assert signed[-1]["heads"] == full["heads"]
    assert {**signed[-1]["header"], "previous": None} == {**full["header"], "previous": None}
