"""Auditors' replay: recompute each card from the event store and compare with the views."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from application.cards import GiftCards
from domain.giftcard import GiftCard
from infra.chains import all_chains, card_chain
from infra.checkpoints import compare, not_checkpointed
from infra.db import Database
from infra.envelope import to_envelope
from infra.recorders import BinaryPostgresProcessRecorder, facts_row_sound
from projections.audit import chain_hash
from projections.schema import AUDIT, BALANCE
from projections.timefmt import fmt, norm

Problem = dict[str, Any]
STATE = ("status", "market", "currency", "amount", "balance", "expires_at", "replaces",
         "replaced_by", "last_version")


def verify_card(
    app: GiftCards,
    db: Database,
    card_id: UUID,
    checkpoints: list[dict[str, Any]] | None = None,
    tally: dict[str, int] | None = None,
) -> tuple[int, list[Problem]]:
    """(events replayed, differences) for one card: its hash chain recomputed from the stored
    events and compared with the signed `checkpoints`, then its replay with the views.
    `tally["not_yet_checkpointed"]` counts its events after the latest checkpoint."""
    cid = str(card_id)
    stored: list[StoredEvent] = []
    chain = card_chain(app.recorder, app.mapper, card_id, stored)
    head = chain.head_problem()
    if head:
        chain.problems.append(head)
    chain.problems.extend(
        compare(cid, chain.hashes, chain.last_version, checkpoints or [], chain.redacted)
    )
    if tally is not None:
        tally["not_yet_checkpointed"] = tally.get("not_yet_checkpointed", 0) + (
            not_checkpointed(cid, chain.last_version, checkpoints or [])
        )
    if chain.problems:
        # The store itself was altered: the views' comparison would only add noise.
        return chain.last_version, chain.problems
    events = [app.mapper.to_domain_event(s) for s in stored]
    audit = {
        int(r[0]): r[1:]
        for r in db.execute(
            f"SELECT version, event_id, hash, prev_hash FROM {AUDIT.name} WHERE card_id = ?", [cid]
        )
    }
    problems: list[Problem] = []

    def problem(version: int | None, text: str) -> None:
        problems.append({"card_id": cid, "version": version, "problem": text})

    if not events:
        problem(None, "no such card in the event store")
    card: GiftCard | None = None
    previous: str | None = None
    published = 0  # the views see published events only (not the chain's seals)
    for event in events:
        version = event.originator_version
        card = cast(GiftCard, cast(Any, event).mutate(card))
        envelope = to_envelope(event, 0, app.pseudonyms)
        row = audit.pop(version, None)
        if envelope is None:
            continue
        published = version
        if row is None:
            problem(version, "event missing from the audit view")
            continue
        event_id, stored_hash, prev_hash = row
        if event_id != envelope["event_id"]:
            problem(version, "event id differs from the audit view")
        if prev_hash != previous:
            problem(version, "audit chain broken: previous hash does not match")
        # Chain from the view's own previous hash: one altered event is reported once.
        if chain_hash(prev_hash, envelope) != stored_hash:
            problem(version, "stored event differs from the audited one (hash mismatch)")
        previous = stored_hash
    for version in sorted(audit):
        problem(version, "audit view has an event the store does not")
    if card is not None:
        _compare_state(db, card, published, problem)
        _compare_lookup_row(app, card, problem)
    return len(events), problems


def _compare_lookup_row(
    app: GiftCards, card: GiftCard, problem: Callable[[int | None, str], None]
) -> None:
    """PostgreSQL keeps each card's lookup row beside its events: a cache, checked like a view
    (its facts against the replay, its MAC against the chain key)."""
    recorder = app.recorder
    if not isinstance(recorder, BinaryPostgresProcessRecorder):
        return
    found = recorder.facts_row(card.id)
    if found is None:  # cards untouched since rows exist have none: lookups read them in full
        return
    facts, version, mac = found
    if not facts_row_sound(recorder.facts_key, facts, version, mac):
        problem(card.version, "lookup row does not match its MAC: edited outside the "
                              "application (lookups read this card in full)")
    replayed = card.facts()
    for name in ("status", "balance", "currency", "market", "expires_at", "held_until",
                 "code_last4"):
        if getattr(facts, name) != getattr(replayed, name):
            problem(card.version, f"lookup row {name} is {getattr(facts, name)!r}, replay "
                                  f"gives {getattr(replayed, name)!r}")
    if version != card.version:
        problem(card.version, f"lookup row is of version {version}, the card is at "
                              f"{card.version}")


def _compare_state(
    db: Database, card: GiftCard, published: int, problem: Callable[[int | None, str], None]
) -> None:
    rows = db.execute(
        f"SELECT {', '.join(STATE)} FROM {BALANCE.name} WHERE card_id = ?", [str(card.id)]
    )
    if not rows:
        problem(card.version, "card missing from the balance view")
        return
    view = dict(zip(STATE, rows[0], strict=True))
    view["replaced_by"] = orjson.loads(view["replaced_by"])
    replayed = {
        "status": card.status, "market": card.market, "currency": card.currency,
        "amount": card.amount, "balance": card.balance, "expires_at": fmt(card.expires_at),
        "replaces": str(card.replaces) if card.replaces else None,
        "replaced_by": [str(c) for c in card.replaced_by], "last_version": published,
    }
    view["expires_at"] = norm(view["expires_at"])
    for name in STATE:
        if replayed[name] != view[name]:
            problem(
                card.version,
                f"balance view {name} is {view[name]!r}, replay gives {replayed[name]!r}",
            )


def verify_store(app: GiftCards, checkpoints: list[dict[str, Any]]) -> list[Problem]:
    """Every card chain recomputed in one pass over the stored events and compared with the
    checkpoints, never reading a view (what `projections rebuild` checks first)."""
    upto = app.recorder.max_notification_id() or 0
    chains = {c.card_id: c for _, c in all_chains(app.recorder, app.mapper, upto)}
    problems = [p for c in chains.values() for p in c.all_problems()]
    for c in chains.values():
        problems.extend(compare(c.card_id, c.hashes, c.last_version, checkpoints, c.redacted))
    for cp in checkpoints:
        for cid, (version, *_) in cp["heads"].items():
            if cid not in chains:
                problems.append({"card_id": cid, "version": version,
                                 "problem": "card in a signed checkpoint is missing from the "
                                            "store: its events were deleted"})
    return problems


def card_ids(
    app: GiftCards, db: Database, checkpoints: list[dict[str, Any]] | None = None
) -> Iterator[UUID]:
    """Every card the store knows (from its purchases), then any only the view or a checkpoint
    knows."""
    topic = get_topic(GiftCard.Purchased)
    seen: set[str] = set()
    start = 1
    while True:
        page = app.recorder.select_notifications(start, 1000, topics=[topic])
        if not page:
            break
        for n in page:
            seen.add(str(n.originator_id))
            yield UUID(str(n.originator_id))
        start = page[-1].id + 1
    for (cid,) in db.execute(f"SELECT card_id FROM {BALANCE.name} ORDER BY card_id"):
        if cid not in seen:
            seen.add(cid)
            yield UUID(cid)
    for cp in checkpoints or []:
        for cid in cp["heads"]:
            if cid not in seen:
                seen.add(cid)
                yield UUID(cid)


def export(db: Database, card_id: UUID, fmt_: str) -> str:
    cols = list(AUDIT.columns)
    rows = [
        dict(zip(cols, r, strict=True))
        for r in db.execute(
            f"SELECT {', '.join(cols)} FROM {AUDIT.name} WHERE card_id = ? ORDER BY version",
            [str(card_id)],
        )
    ]
    if fmt_ == "jsonl":
        return "".join(orjson.dumps(r).decode() + "\n" for r in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
