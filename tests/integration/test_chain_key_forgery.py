"""A database insider without the chain key cannot append, edit or re-chain a card's events
unnoticed: every link is sealed with HMAC-SHA256 under a key kept outside the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from application.commands import PurchaseCard, RedeemCard
from application.results import Purchase
from domain.chain import link
from infra import checkpoints as cps
from infra.bootstrap import Service, build
from infra.config import load_settings
from projections.verify import verify_store
from tests.integration.test_tamper_evidence import delete, rows, set_state

KEY = Ed25519PrivateKey.generate()


def thirty_euro_card(service: Service) -> Purchase:
    return service.app.purchase(PurchaseCard(
        market="FR", amount=3000, payment_method="card", buyer_id="cust-a", order_id="P-30",
    ))


def forger(env_for: dict[str, str], clock: Any, tmp_path: Path, key: str | None) -> Service:
    """The application's own code run against the same database by someone without the chain
    key: with no key (hashes by the public formula only) or with a key of their own."""
    forged = build(load_settings({**env_for, "GIFTCARDS_CHAIN_KEY_FILE":
                                  str(tmp_path / "forger" / "chain.key")}), clock=clock)
    if key is None:
        forged.app.mapper.chain_key = None  # type: ignore[attr-defined]
    return forged


def test_forged_redeemed_with_a_public_formula_hash_is_named_after_a_checkpoint(
    service: Service, env_for: dict[str, str], clock: Any, tmp_path: Path
) -> None:
    card = thirty_euro_card(service)
    checkpoint = cps.create(service.app.recorder, service.app.mapper, KEY, clock(),
                            tmp_path / "checkpoints")
    for key in (None, "own"):
        other = forger(env_for, clock, tmp_path, key)
        try:
            other.app.redeem(RedeemCard(
                code=card.code, market="FR", order_id=f"O-{key}", order_total=3000, customer_id="x",
                source="test",
            ))
        finally:
            other.close()
        # The forged event's chain hash is right by the public formula...
        cid = str(card.card_id)
        last = max(v for c, v, _, _ in rows(service) if c == cid)
        problems = verify_store(service.app, [checkpoint])
        named = {(p["card_id"], p["version"]) for p in problems}
        # ...but its MAC is missing or made with another key: named at its version.
        assert (cid, last) in named, problems
        assert all(c == cid for c, _ in named)
        for _, version in sorted(named):
            delete(service, cid, version)  # undo the forgery for the next round
        assert verify_store(service.app, [checkpoint]) == []


def test_event_recorded_after_the_last_checkpoint_edited_with_a_recomputed_chain_is_named(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    """The unprotected window of a checkpoint-only design: an event newer than every checkpoint,
    edited and re-hashed, is named by the chain key alone (what `projections rebuild` checks
    first, so the edit is never laundered into the views)."""
    cps.create(service.app.recorder, service.app.mapper, KEY, clock(), tmp_path / "checkpoints")
    card = thirty_euro_card(service)
    cid = str(card.card_id)
    prev = None
    for c, version, topic, state in rows(service):
        if c != cid:
            continue
        fields = orjson.loads(state)
        if version == 1:
            fields["amount"] = fields["amount"] * 10
        fields["prev_hash"] = prev
        fields["event_hash"] = prev = link(prev, topic, {
            **fields, "originator_id": cid, "originator_version": version})
        set_state(service, cid, version, fields)
    trusted, _ = cps.trusted(tmp_path / "checkpoints", KEY.public_key())
    named = {(p["card_id"], p["version"]) for p in verify_store(service.app, trusted)}
    assert (cid, 1) in named and {c for c, _ in named} == {cid}


def test_stripping_every_mac_of_a_card_is_named_at_its_head(service: Service) -> None:
    """A forger who removes the MACs (rather than leave wrong ones) leaves a card whose last
    event is not sealed: named."""
    card = thirty_euro_card(service)
    cid = str(card.card_id)
    for c, version, _, state in rows(service):
        if c == cid:
            fields = orjson.loads(state)
            fields.pop("chain_mac")
            set_state(service, cid, version, fields)
    last = max(v for c, v, _, _ in rows(service) if c == cid)
    problems = verify_store(service.app, [])
    assert [(p["card_id"], p["version"]) for p in problems] == [(cid, last)]
    assert "not sealed under the chain key" in problems[0]["problem"]


def test_a_whole_checkpointed_card_deleted_is_named_by_verify_and_rebuild(
    service: Service, clock: Any, tmp_path: Path
) -> None:
    """No chain is left to check: the checkpoint's heads (its commitment to the set of cards)
    name the card, in `audit verify --all` and before any `projections rebuild`."""
    card = thirty_euro_card(service)
    cid = str(card.card_id)
    checkpoint = cps.create(service.app.recorder, service.app.mapper, KEY, clock(),
                            tmp_path / "checkpoints")
    for c, version, _, _ in rows(service):
        if c == cid:
            delete(service, cid, version)
    problems = verify_store(service.app, [checkpoint])
    assert [(p["card_id"], "missing from the store" in p["problem"]) for p in problems] == [
        (cid, True)]
