"""The auditor's tampering experiments, each a small function, run on SQLite and PostgreSQL,
with and without the copy on Kafka: each is named by `audit verify`'s checks (what `projections
rebuild` runs first), or is out of reach exactly as the guarantees table of
docs/evidence-formats.md says."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.results import Purchase
from dev.services import unique_topic_prefix
from domain.chain import link
from infra import checkpoints as cps
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.kafka.admin import ensure_topics
from infra.kafka.copy import compare, published_cards
from infra.kafka.links import ForgedLinkError
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from projections.verify import verify_store
from tests.integration.test_chain_key_forgery import forger
from tests.integration.test_tamper_evidence import (
    delete,
    rows,
    set_state,
    set_version,
    table,
    write_histories,
)

KEY = Ed25519PrivateKey.generate()
Names = set[tuple[str, int | None]]


@dataclass
class Lab:
    """One store after every event type and a signed checkpoint; with Kafka, every event
    published first. `relay()` publishes what was stored since (as a running relay would)."""

    service: Service
    clock: Any
    env: dict[str, str]
    tmp: Path
    bootstrap: str | None = None
    topics: Topics | None = None
    copy: dict[tuple[str, int], Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.tmp / "checkpoints"

    @property
    def kafka(self) -> bool:
        return self.bootstrap is not None

    def relay(self) -> int:
        if self.bootstrap is None or self.topics is None:
            return 0
        relay = Relay(self.service, self.bootstrap, self.topics,
                      transactional_id=f"{self.topics.prefix}r")
        try:
            published = relay.drain()
        finally:
            relay.close()
        self.copy = published_cards(self.bootstrap, self.topics.events, poll_ms=200)
        return published

    def checkpointer(self) -> cps.Checkpointer:
        checkpointer = cps.Checkpointer(self.service.app.recorder, self.service.app.mapper)
        trusted, _ = cps.trusted(self.directory, KEY.public_key())
        checkpointer.follow(trusted)
        checkpointer.catch_up()
        checkpointer.changed.clear()  # what the checkpoints already hold
        return checkpointer

    def found(self) -> Names:
        """What `audit verify --all` names: chains, the trusted checkpoints (and problems with
        them), and with Kafka the copy."""
        trusted, bad = cps.trusted(self.directory, KEY.public_key())
        problems = verify_store(self.service.app, trusted) + bad
        if self.copy:
            problems += compare(self.service.app.recorder, self.service.app.mapper, self.copy,
                               self.service.pseudonyms)
        return {(p["card_id"], p["version"]) for p in problems}

    def card(self, market: str = "FR", amount: int = 3000) -> Purchase:
        n = len(rows(self.service))
        return self.service.app.purchase(market=market, amount=amount, payment_method="card",
                                         buyer_id="cust-lab", order_id=f"P-LAB-{n}")

    def last(self, card: str) -> int:
        return max(v for c, v, _, _ in rows(self.service) if c == card)

    def first_card(self) -> str:
        return rows(self.service)[0][0]


@pytest.fixture(params=["without Kafka", "with Kafka"])
def lab(service: Service, clock: Any, env_for: dict[str, str], tmp_path: Path,
        request: pytest.FixtureRequest) -> Iterator[Lab]:
    made = Lab(service, clock, env_for, tmp_path)
    write_histories(service, clock)
    if request.param == "with Kafka":
        made.bootstrap = request.getfixturevalue("kafka_bootstrap")
        made.topics = Topics(unique_topic_prefix())
        ensure_topics(made.bootstrap, made.topics, 1)
        assert made.relay() > 0
    cps.create(service.app.recorder, service.app.mapper, KEY, clock(), made.directory)
    assert made.found() == set()
    yield made


def rechain(lab: Lab, card: str, change: Callable[[int, dict[str, Any]], None]) -> None:
    """Every event of `card` rewritten by `change`, every hash recomputed by the public
    formula (the MACs cannot be: no chain key)."""
    prev = None
    for c, version, topic, state in rows(lab.service):
        if c != card:
            continue
        fields = orjson.loads(state)
        change(version, fields)
        fields["prev_hash"] = prev
        fields["event_hash"] = prev = link(prev, topic, {
            **fields, "originator_id": card, "originator_version": version})
        set_state(lab.service, card, version, fields)


def forge_redeemed(lab: Lab, code: str, key: str | None) -> None:
    other = forger(lab.env, lab.clock, lab.tmp, key)
    try:
        other.app.redeem(code=code, market="FR", order_id=f"O-FORGED-{key}", order_total=3000,
                         customer_id="x", source="test")
    finally:
        other.close()


# --- the experiments: each tampers, then says what must be named (None: out of reach) ----

def edit_a_field(lab: Lab) -> Names | None:
    card, version, _, state = rows(lab.service)[0]
    set_state(lab.service, card, version, {**orjson.loads(state), "amount": 900000})
    return {(card, version)}


def edit_with_a_recomputed_chain(lab: Lab) -> Names | None:
    card = lab.first_card()
    rechain(lab, card, lambda v, f: f.update(amount=900000) if v == 1 else None)
    return {(card, 1)}


def edit_after_the_checkpoint_with_a_recomputed_chain(lab: Lab) -> Names | None:
    card = str(lab.card().card_id)
    lab.relay()
    rechain(lab, card, lambda v, f: f.update(amount=50000) if v == 1 else None)
    return {(card, 1)}


def delete_an_event_in_the_middle(lab: Lab) -> Names | None:
    card = next(c for c, v, _, _ in rows(lab.service) if v == 3)
    delete(lab.service, card, 2)
    return {(card, 3)}


def delete_the_tail_before_the_checkpoint(lab: Lab) -> Names | None:
    card = lab.first_card()
    last = lab.last(card)
    delete(lab.service, card, last)
    return {(card, last)}


def delete_the_tail_after_an_increment(lab: Lab) -> Names | None:
    checkpointer = lab.checkpointer()  # serve's, running since the checkpoint
    card = lab.card(market="DE", amount=30000)
    lab.service.app.redeem(code=card.code, market="DE", order_id="O-DE-LAB",
                           order_total=30000, customer_id="c", source="test")
    lab.relay()
    assert checkpointer.sign_increment(KEY, lab.clock(), lab.directory) is not None
    last = lab.last(str(card.card_id))
    delete(lab.service, str(card.card_id), last)
    return {(str(card.card_id), last)}


def delete_the_tail_within_the_last_seconds(lab: Lab) -> Names | None:
    """No increment signed it yet: only the copy on Kafka saw it (the documented window)."""
    card = lab.card(market="DE", amount=30000)
    lab.service.app.redeem(code=card.code, market="DE", order_id="O-DE-WIN",
                           order_total=30000, customer_id="c", source="test")
    lab.relay()
    last = lab.last(str(card.card_id))
    delete(lab.service, str(card.card_id), last)
    return {(str(card.card_id), last)} if lab.kafka else None


def swap_two_events(lab: Lab) -> Names | None:
    card = next(c for c, v, _, _ in rows(lab.service) if v == 3)
    set_version(lab.service, card, 2, -1)
    set_version(lab.service, card, 3, 2)
    set_version(lab.service, card, -1, 3)
    return {(card, 2), (card, 3)}


def insert_a_copy_of_an_event(lab: Lab) -> Names | None:
    card = lab.first_card()
    last = lab.last(card)
    _, _, topic, state = next(r for r in rows(lab.service) if r[0] == card and r[1] == 2)
    lab.service.db.execute(
        f"INSERT INTO {table(lab.service)} (originator_version, topic, state, originator_id) "
        "VALUES (?, ?, ?, ?)", [last + 1, topic, state, stored(lab, card)])
    return {(card, last + 1)}


def forged_append_with_a_public_formula_hash(lab: Lab) -> Names | None:
    card = lab.card()
    lab.relay()
    forge_redeemed(lab, card.code, None)
    return {(str(card.card_id), lab.last(str(card.card_id)))}


def forged_append_with_another_chain_key(lab: Lab) -> Names | None:
    card = lab.card()
    lab.relay()
    forge_redeemed(lab, card.code, "own")
    return {(str(card.card_id), lab.last(str(card.card_id)))}


def every_mac_of_a_card_stripped(lab: Lab) -> Names | None:
    card = lab.first_card()
    for c, version, _, state in rows(lab.service):
        if c == card:
            fields = orjson.loads(state)
            fields.pop("chain_mac")
            set_state(lab.service, card, version, fields)
    return {(card, lab.last(card))}


def a_whole_checkpointed_card_deleted(lab: Lab) -> Names | None:
    card = lab.first_card()
    last = lab.last(card)
    for version in range(1, last + 1):
        delete(lab.service, card, version)
    return {(card, last)}


def a_whole_card_deleted_after_an_increment(lab: Lab) -> Names | None:
    checkpointer = lab.checkpointer()
    card = str(lab.card().card_id)
    lab.relay()
    assert checkpointer.sign_increment(KEY, lab.clock(), lab.directory) is not None
    last = lab.last(card)
    for version in range(1, last + 1):
        delete(lab.service, card, version)
    return {(card, last)}


def a_whole_card_deleted_within_the_last_seconds(lab: Lab) -> Names | None:
    card = str(lab.card().card_id)
    lab.relay()
    last = lab.last(card)
    for version in range(1, last + 1):
        delete(lab.service, card, version)
    return {(card, v) for v in range(1, last + 1)} if lab.kafka else None


def rewrite_then_sign_a_new_checkpoint(lab: Lab) -> Names | None:
    """The signing key's holder rewrites a card (no chain key) and signs: refused, and the
    rewrite is named."""
    card = lab.first_card()
    rechain(lab, card, lambda v, f: f.update(amount=900000) if v == 1 else None)
    with pytest.raises(cps.CheckpointError):
        cps.create(lab.service.app.recorder, lab.service.app.mapper, KEY, lab.clock(),
                   lab.directory, chain=cps.trusted(lab.directory, KEY.public_key())[0])
    return {(card, 1)}


def checkpoint_heads_rewritten(lab: Lab) -> Names | None:
    path = cps.paths(lab.directory)[0]
    forged = orjson.loads(path.read_bytes())
    some = next(iter(forged["heads"]))
    forged["heads"][some][1] = "0" * 64
    path.write_bytes(orjson.dumps(forged))
    return {(None, None)}


def a_checkpoint_signed_with_another_key(lab: Lab) -> Names | None:
    cps.create(lab.service.app.recorder, lab.service.app.mapper, Ed25519PrivateKey.generate(),
               lab.clock(), lab.directory)
    return {(None, None)}


def an_increment_removed_from_the_chain(lab: Lab) -> Names | None:
    checkpointer = lab.checkpointer()
    for _ in range(2):
        lab.card()
        assert checkpointer.sign_increment(KEY, lab.clock(), lab.directory) is not None
    lab.relay()
    cps.increment_paths(lab.directory)[0].unlink()
    return {(None, None)}


def the_latest_increment_removed_then_what_it_signed_deleted(lab: Lab) -> Names | None:
    """Out of reach without Kafka: nothing left names the card (keep the checkpoint directory
    where the database insider cannot write); with Kafka, the copy on giftcard.events."""
    checkpointer = lab.checkpointer()
    card = str(lab.card().card_id)
    lab.relay()
    assert checkpointer.sign_increment(KEY, lab.clock(), lab.directory) is not None
    cps.increment_paths(lab.directory)[-1].unlink()
    last = lab.last(card)
    for version in range(1, last + 1):
        delete(lab.service, card, version)
    return {(card, v) for v in range(1, last + 1)} if lab.kafka else None


def an_event_appended_by_a_holder_of_the_chain_key(lab: Lab) -> Names | None:
    """Out of reach in every mode: the chain key is what makes an event the application's
    (published too, so the copy agrees). Keep it as close as the application's own process."""
    card = lab.card()
    insider = build(load_settings(lab.env), clock=lab.clock)
    try:
        insider.app.redeem(code=card.code, market="FR", order_id="O-INSIDER",
                           order_total=3000, customer_id="x", source="test")
    finally:
        insider.close()
    lab.relay()
    return None


def stored(lab: Lab, card: str) -> str:
    from tests.integration.test_tamper_evidence import stored_id

    return stored_id(lab.service, card)


EXPERIMENTS = [
    edit_a_field, edit_with_a_recomputed_chain, edit_after_the_checkpoint_with_a_recomputed_chain,
    delete_an_event_in_the_middle, delete_the_tail_before_the_checkpoint,
    delete_the_tail_after_an_increment, delete_the_tail_within_the_last_seconds,
    swap_two_events, insert_a_copy_of_an_event, forged_append_with_a_public_formula_hash,
    forged_append_with_another_chain_key, every_mac_of_a_card_stripped,
    a_whole_checkpointed_card_deleted, a_whole_card_deleted_after_an_increment,
    a_whole_card_deleted_within_the_last_seconds, rewrite_then_sign_a_new_checkpoint,
    checkpoint_heads_rewritten, a_checkpoint_signed_with_another_key,
    an_increment_removed_from_the_chain, the_latest_increment_removed_then_what_it_signed_deleted,
    an_event_appended_by_a_holder_of_the_chain_key,
]


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda e: e.__name__)
def test_each_tampering_experiment_is_named_or_out_of_reach_as_documented(
    lab: Lab, experiment: Callable[[Lab], Names | None]
) -> None:
    expected = experiment(lab)
    names = lab.found()
    if expected is None:  # the window the guarantees table documents: nothing names it
        assert names == set()
    else:
        assert expected & names, (expected, names)


@pytest.mark.parametrize("lab", ["with Kafka"], indirect=True)
@pytest.mark.parametrize("key", [None, "own"])
def test_a_forged_append_never_reaches_kafka(lab: Lab, key: str | None) -> None:
    card = lab.card()
    lab.relay()
    forge_redeemed(lab, card.code, key)
    with pytest.raises(ForgedLinkError):
        lab.relay()
    lab.copy = published_cards(lab.bootstrap or "", lab.topics.events if lab.topics else "")
    assert (str(card.card_id), lab.last(str(card.card_id))) not in lab.copy


def test_the_guarantees_table_lists_every_experiment_and_only_those() -> None:
    """Each ✱ row of the table is backed by an experiment here, and each experiment by a row."""
    import re

    doc = (Path(__file__).parents[2] / "docs" / "evidence-formats.md").read_text()
    table = doc[doc.index("## Guarantees"):]
    starred = {name for row in table.splitlines() if "✱" in row
               for name in re.findall(r"`([a-z_]+)`", row.split("✱", 1)[1].split(";")[0])}
    assert starred == {e.__name__ for e in EXPERIMENTS}
