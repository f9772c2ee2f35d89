"""Between full checkpoints, signed increments of the card heads that changed, each chained to
the one before: a tail or a whole card deleted seconds after it was recorded is named without
Kafka, and a removed increment breaks the chain."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.commands import PurchaseCard, RedeemCard
from infra import checkpoints as cps
from infra.bootstrap import Service
from infra.checkpoint_signer import every
from projections.verify import verify_store
from tests.integration.test_tamper_evidence import delete, rows

KEY = Ed25519PrivateKey.generate()


def spent_de_card(service: Service) -> str:
    card = service.app.purchase(PurchaseCard(
        market="DE", amount=30000, payment_method="card", buyer_id="cust-de", order_id="P-DE",
    ))
    service.app.redeem(RedeemCard(
        code=card.code, market="DE", order_id="O-DE", order_total=30000, customer_id="cust-de",
        source="test",
    ))
    return str(card.card_id)


def named(service: Service, directory: Path) -> set[tuple[str, int | None]]:
    trusted, bad = cps.trusted(directory, KEY.public_key())
    assert bad == []
    return {(p["card_id"], p["version"]) for p in verify_store(service.app, trusted)}


def test_tail_and_whole_card_deleted_after_an_increment_are_named_without_kafka(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "checkpoints"
    checkpointer = cps.Checkpointer(service.app.recorder, service.app.mapper)
    service.app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id="a", order_id="P-0",
    ))
    checkpointer.sign(KEY, clock(), directory)  # the full one: before the cards below
    spent = spent_de_card(service)
    late = str(service.app.purchase(PurchaseCard(
        market="FR", amount=4000, payment_method="card", buyer_id="b", order_id="P-LATE",
    )).card_id)
    increment = checkpointer.sign_increment(KEY, clock(), directory)
    assert increment is not None and set(increment["heads"]) == {spent, late}
    assert checkpointer.sign_increment(KEY, clock(), directory) is None  # nothing changed
    assert named(service, directory) == set()
    # The spent card's Redeemed deleted: spendable again, but the increment holds its head.
    last = max(v for c, v, _, _ in rows(service) if c == spent)
    delete(service, spent, last)
    assert (spent, last) in named(service, directory)
    # A whole card that only an increment saw: missing from the store.
    head = max(v for c, v, _, _ in rows(service) if c == late)
    for c, version, _, _ in rows(service):
        if c == late:
            delete(service, late, version)
    assert (late, head) in named(service, directory)


def test_an_increment_removed_from_the_chain_is_named(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "checkpoints"
    checkpointer = cps.Checkpointer(service.app.recorder, service.app.mapper)
    checkpointer.sign(KEY, clock(), directory)
    for i in range(3):
        service.app.purchase(PurchaseCard(
            market="FR", amount=2000, payment_method="card", buyer_id=f"b{i}", order_id=f"P-{i}",
        ))
        assert checkpointer.sign_increment(KEY, clock(), directory) is not None
    trusted, bad = cps.trusted(directory, KEY.public_key())
    assert bad == [] and len(trusted) == 4
    cps.increment_paths(directory)[1].unlink()
    trusted, bad = cps.trusted(directory, KEY.public_key())
    assert len(trusted) == 3
    assert ["does not follow the checkpoint before it" in p["problem"] for p in bad] == [True]


@pytest.mark.serial  # serve's signing cadence is measured in wall-clock seconds
def test_serve_signs_an_increment_within_its_cadence_and_a_full_one_supersedes_them(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "checkpoints"
    checkpointer = cps.Checkpointer(service.app.recorder, service.app.mapper)
    full: list[dict[str, Any]] = []
    signed: list[dict[str, Any] | None] = []
    stop = threading.Event()
    worker = threading.Thread(target=every, args=(
        checkpointer, lambda: full.append(checkpointer.sign(KEY, clock(), directory)),
        8, 3600, stop, 0.05,
        lambda: signed.append(checkpointer.sign_increment(KEY, clock(), directory))))
    worker.start()
    try:
        card = str(service.app.purchase(PurchaseCard(
            market="FR", amount=2000, payment_method="card", buyer_id="b", order_id="P-1",
        )).card_id)
        deadline = time.monotonic() + 20
        while not cps.increment_paths(directory) and time.monotonic() < deadline:
            time.sleep(0.05)
        increments = cps.increment_paths(directory)
        assert len(increments) == 1 and card in cps.read(increments[0])["heads"]
        for i in range(3):  # 4 index and card events each: past the full checkpoint's 8
            service.app.purchase(PurchaseCard(
                market="FR", amount=2000, payment_method="card", buyer_id=f"c{i}",
                order_id=f"P-N{i}",
            ))
        while not full and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert full and cps.increment_paths(directory) == []  # superseded: it holds every head
    last = [i for i in signed if i is not None][-1]  # the full one is chained to it
    assert full[0]["header"]["previous"] == cps.header_digest(last["header"])
    trusted, bad = cps.trusted(directory, KEY.public_key())
    assert bad == [] and trusted == full


def test_serves_checkpoint_part_publishes_each_increment_with_its_heads(
    service: Service, env_for: dict[str, str], kafka_bootstrap: str
) -> None:
    from dev.services import unique_topic_prefix
    from entrypoints.cli.consume import checkpoints_loop
    from infra.config import load_settings
    from infra.kafka.checkpoints import published

    settings = load_settings({**env_for, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                              "GIFTCARDS_TOPIC_PREFIX": unique_topic_prefix(),
                              "GIFTCARDS_PARTITIONS": "1",
                              "GIFTCARDS_CHECKPOINT_INCREMENT_SECONDS": "0.2"})
    stop = threading.Event()
    part = threading.Thread(target=checkpoints_loop(settings), args=(stop,))
    part.start()
    try:
        card = str(service.app.purchase(PurchaseCard(
            market="FR", amount=2000, payment_method="card", buyer_id="b", order_id="P-1",
        )).card_id)
        deadline = time.monotonic() + 30
        while not cps.increment_paths(settings.checkpoint_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        part.join(timeout=30)
    assert not part.is_alive()
    [path] = cps.increment_paths(settings.checkpoint_dir)
    increment = cps.read(path)
    assert card in increment["heads"]
    copies = published(settings)
    assert copies[-1] == increment  # header, signature and heads: the file is no longer needed
