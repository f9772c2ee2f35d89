"""Recomputing card hash chains from the stored events alone, and the Merkle root of their heads."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, Recorder, StoredEvent
from eventsourcing.utils import get_topic

from domain.chain import NOT_HASHED, link, link_mac
from domain.giftcard import GiftCard

CARD_TOPIC_PREFIX = get_topic(GiftCard) + "."
Problem = dict[str, Any]
# Customer and order ids: an evidence pack ships each as a keyed pseudonym (`redact`).
ID_FIELDS = ("buyer_subject", "customer_id", "order_id", "correlation_id")
REDACTED_DOMAIN = b"giftcards-redacted-v1\n"


def ids_key(chain_key: bytes) -> bytes:
    """The key of the pseudonyms in packs, derived from the chain key (never shipped): the same
    customer has the same pseudonym in every pack, and nobody without it can test a guess."""
    return hmac.new(chain_key, b"giftcards-pack-ids-v1", hashlib.sha256).digest()


@lru_cache(maxsize=4)
def _ids_key(chain_key: bytes) -> bytes:
    return ids_key(chain_key)


def redact(fields: dict[str, Any], key: bytes) -> dict[str, Any]:
    """`fields` with each customer or order id (and a subject named in `pii`) replaced by
    `id:` + the first 32 hex digits of HMAC-SHA256(key, id)."""
    def pseudonym(value: str) -> str:
        return "id:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]

    shown = {k: pseudonym(v) if k in ID_FIELDS and isinstance(v, str) else v
             for k, v in fields.items()}
    pii = fields.get("pii")
    if isinstance(pii, dict):
        shown["pii"] = {k: pseudonym(v) if k.endswith("_subject") and isinstance(v, str) else v
                        for k, v in pii.items()}
    return shown


def redacted_link(prev: str | None, topic: str, fields: dict[str, Any]) -> str:
    """The redacted chain: sha256(domain tag, predecessor's redacted hash, event type,
    canonical JSON of the redacted fields less the chain's own) — what a pack can recompute."""
    digest = hashlib.sha256(REDACTED_DOMAIN)
    digest.update((prev or "").encode() + b"\n" + topic.encode() + b"\n")
    digest.update(orjson.dumps({k: v for k, v in fields.items() if k not in NOT_HASHED},
                               option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


@dataclass
class CardChain:
    """One card's chain, fed its stored events in store order; every hash recomputed and, given
    the chain key, every link's MAC checked (an auditor of a pack, without the key, relies on
    the signed checkpoints instead)."""

    card_id: str
    key: bytes | None = None
    hashes: dict[int, str] = field(default_factory=dict)  # version -> hash
    problems: list[Problem] = field(default_factory=list)
    last_version: int = 0
    head: str | None = None
    chained: bool = False
    keyed: bool = False  # a sealed (MAC'd) link was seen: every later one must be sealed too
    head_sealed: bool = False
    market: str | None = None
    # The redacted chain (ids as pseudonyms), kept with the chain key, or from a pack whose
    # fields are already redacted (`redacted_fields`: event hashes then come as shipped).
    redacted_fields: bool = False
    redacted: dict[int, str] = field(default_factory=dict)

    def problem(self, version: int | None, text: str) -> None:
        self.problems.append({"card_id": self.card_id, "version": version, "problem": text})

    def feed(self, version: int, topic: str, fields: dict[str, Any]) -> None:
        if version != self.last_version + 1:
            self.problem(version, f"version {version} follows version {self.last_version} in "
                                  "the store: an event was removed, inserted or reordered")
        self.market = self.market or fields.get("market")
        fields = {**fields, "originator_id": self.card_id, "originator_version": version}
        stored = fields.get("event_hash")
        computed = str(stored or "") if self.redacted_fields else link(self.head, topic, fields)
        if self.redacted_fields or self.key is not None:
            shown = fields if self.redacted_fields else redact(fields, self._ids_key())
            self.redacted[version] = redacted_link(self.redacted.get(version - 1), topic, shown)
        if stored is None:
            if self.chained:
                self.problem(version, "event without chain hashes inside the chain (inserted)")
        else:
            self.chained = True
            if fields.get("prev_hash") != self.head:
                self.problem(version, f"prev_hash is not the hash of version {version - 1}: an "
                                      "earlier event was changed, removed or reordered")
            if computed != stored:
                self.problem(version, "stored event differs from the one recorded (its fields "
                                      "do not give its hash)")
        if self.key is not None:
            self._check_mac(version, stored, fields.get("chain_mac"))
        # Go on from the stored hash: one edited event is named once, at its own version.
        self.head = stored or computed
        self.hashes[version] = self.head
        self.last_version = max(self.last_version, version)


    def _ids_key(self) -> bytes:
        assert self.key is not None
        return _ids_key(self.key)

    def head_of(self) -> list[Any]:
        """The head a checkpoint signs: [version, hash, market(, redacted hash)]."""
        head: list[Any] = [self.last_version, self.hashes[self.last_version], self.market or ""]
        if self.last_version in self.redacted:
            head.append(self.redacted[self.last_version])
        return head

    def _check_mac(self, version: int, stored: str | None, mac: Any) -> None:
        assert self.key is not None
        if mac is None:
            if self.keyed:
                self.problem(version, "event without a chain MAC after sealed events: written "
                                      "without the chain key (forged or inserted)")
        elif stored is None or not hmac.compare_digest(str(mac), link_mac(self.key, stored)):
            self.problem(version, "chain MAC does not match: the event was not recorded by the "
                                  "application (forged, or edited with a recomputed hash)")
        self.keyed = self.keyed or mac is not None
        self.head_sealed = mac is not None

    def head_problem(self) -> Problem | None:
        """With the chain key: a card whose last event is not sealed by it (appended without
        the key, or a store not yet migrated by `audit seal`)."""
        if self.key is None or self.head_sealed or not self.last_version:
            return None
        return {"card_id": self.card_id, "version": self.last_version,
                "problem": "the card's last event is not sealed under the chain key: written "
                           "without it (forged), or history not yet sealed (`audit seal`)"}

    def all_problems(self) -> list[Problem]:
        head = self.head_problem()
        return [*self.problems, head] if head else list(self.problems)


def chain_key_of(mapper: Any) -> bytes | None:
    """The chain key the composition root gave the mapper (None: links are not checked)."""
    key: bytes | None = getattr(mapper, "chain_key", None)
    return key


def fields_of(mapper: Mapper[Any], stored: StoredEvent) -> dict[str, Any]:
    """The stored JSON fields, upcast to the class's version (never through the views)."""
    _, fields, _ = mapper.to_state(stored)  # type: ignore[attr-defined]
    return dict(fields)


def card_chain(recorder: Recorder, mapper: Mapper[Any], card_id: UUID,
               read: list[StoredEvent] | None = None) -> CardChain:
    """One card's chain from its stored events (appended to `read` when given: the caller
    replays them without a second query)."""
    chain = CardChain(str(card_id), key=chain_key_of(mapper))
    for stored in recorder.select_events(card_id):  # type: ignore[attr-defined]
        chain.feed(stored.originator_version, stored.topic, fields_of(mapper, stored))
        if read is not None:
            read.append(stored)
    return chain


def all_chains(
    recorder: Any, mapper: Mapper[Any], upto: int, page: int = 1000, *, start: int = 1,
    chains: dict[str, CardChain] | None = None,
) -> Iterator[tuple[int, CardChain]]:
    """Every card's chain from the notification log, from `start` up to position `upto`, in
    store order, going on with `chains` if given; yields (position, chain) after each event."""
    chains = {} if chains is None else chains
    while start <= upto:
        batch = recorder.select_notifications(start, page, stop=upto)
        if not batch:
            break
        for n in batch:
            if n.topic.startswith(CARD_TOPIC_PREFIX):
                cid = str(n.originator_id)
                chain = chains.get(cid) or chains.setdefault(
                    cid, CardChain(cid, key=chain_key_of(mapper)))
                chain.feed(n.originator_version, n.topic, fields_of(mapper, n))
                yield n.id, chain
        start = batch[-1].id + 1


def leaf(card_id: str, version: int, head: str, redacted: str | None = None) -> bytes:
    text = f"{card_id}:{version}:{head}" + (f":{redacted}" if redacted else "")
    return hashlib.sha256(text.encode()).digest()


def merkle_root(heads: dict[str, Any]) -> str:
    """SHA-256 Merkle root over the card chain heads ([version, hash, market(, redacted hash)]
    or (version, hash)), sorted by card id (last odd node promoted)."""
    return _root([_leaf_of(cid, h) for cid, h in sorted(heads.items())])


def merkle_roots(heads: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """(`merkle_root(heads)`, per market: how many cards and the Merkle root of their heads),
    each leaf hashed once and the heads sorted once: what a full checkpoint signs."""
    leaves: list[bytes] = []
    by_market: dict[str, list[bytes]] = {}
    for cid, head in sorted(heads.items()):
        leaves.append(_leaf_of(cid, head))
        if len(head) > 2 and head[2]:
            by_market.setdefault(str(head[2]), []).append(leaves[-1])
    return _root(leaves), {m: {"cards": len(level), "root": _root(level)}
                           for m, level in sorted(by_market.items())}


def _leaf_of(card_id: str, head: Any) -> bytes:
    return leaf(card_id, int(head[0]), str(head[1]), head[3] if len(head) > 3 else None)


def _root(level: list[bytes]) -> str:
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        nxt = [hashlib.sha256(level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def unsealed_cards(recorder: Any, mapper: Mapper[Any]) -> list[UUID]:
    """Cards whose last stored event carries no chain hash (stored before the chain existed)
    or, with the chain key, no chain MAC (stored before links were sealed)."""
    mark = "event_hash" if chain_key_of(mapper) is None else "chain_mac"
    upto = recorder.max_notification_id() or 0
    last: dict[str, bool] = {}
    start = 1
    while start <= upto:
        batch = recorder.select_notifications(start, 1000, stop=upto)
        if not batch:
            break
        for n in batch:
            if n.topic.startswith(CARD_TOPIC_PREFIX):
                last[str(n.originator_id)] = fields_of(mapper, n).get(mark) is None
        start = batch[-1].id + 1
    return [UUID(cid) for cid, unsealed in last.items() if unsealed]
