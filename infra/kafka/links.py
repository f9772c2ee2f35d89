"""The relay's check of each card event's chain link before publishing it: a link the chain
key did not seal (a forgery by someone with database access only) stops the relay there."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from domain.chain import link, link_mac
from infra.chains import CARD_TOPIC_PREFIX, chain_key_of, fields_of
from infra.config import ConfigError
from infra.db import Database
from infra.orjsonpydantic import StoredState

# A notification and its state as the mapper decoded it. The relay decodes each stored event
# once, for this check and for its envelope.
Decoded = tuple[Any, StoredState]

TABLE = """CREATE TABLE IF NOT EXISTS relay_refused_links (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    card_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    problem TEXT NOT NULL
)"""


class ForgedLinkError(ConfigError):
    """A stored card event whose chain link is not sealed by the chain key: the relay publishes
    nothing from it on (once on Kafka it would look like any genuine event)."""

    code = "relay_forged_link"

    def __init__(self, position: int, card_id: str, version: int, problem: str) -> None:
        super().__init__(f"card {card_id} version {version} (position {position}): {problem}; "
                         "not publishing it or anything after it (run `audit verify`)")
        self.position, self.card_id, self.version, self.problem = (
            position, card_id, version, problem)

    def __reduce__(self) -> tuple[type[ForgedLinkError], tuple[int, str, int, str]]:
        # Raised in the relay's reader process, sent to the relay as itself.
        return type(self), (self.position, self.card_id, self.version, self.problem)


class LinkChecker:
    """Checks each card event's own link: its fields give its hash and the chain key's MAC of
    that hash is stored with it. An event stored without a MAC passes only while the store was
    not yet sealed: never after a sealed event (in this relay's run or of the same card)."""

    def __init__(self, recorder: Any, mapper: Any) -> None:
        self.recorder, self.mapper = recorder, mapper
        self.key = chain_key_of(mapper)
        self.sealed_seen = False
        self.held_back = False  # the last batch stopped short of a forged link

    def sealed_prefix(self, decoded: Sequence[Decoded]) -> list[Decoded]:
        """The (notification, decoded state) pairs before the first forged link; raises
        ForgedLinkError if it is the first one (so the relay publishes up to it, then stops)."""
        self.held_back = False
        if self.key is None:
            return list(decoded)
        for i, (n, (_, fields, _)) in enumerate(decoded):
            if not n.topic.startswith(CARD_TOPIC_PREFIX):
                continue
            problem = self.problem(n, fields)
            if problem is not None:
                if i:
                    self.held_back = True
                    return list(decoded[:i])
                raise ForgedLinkError(n.id, str(n.originator_id), n.originator_version, problem)
        return list(decoded)

    def problem(self, n: Any, fields: dict[str, Any]) -> str | None:
        """What is wrong with the link of notification `n`, whose decoded fields are `fields`
        (read, never changed), or None."""
        assert self.key is not None
        stored, mac = fields.get("event_hash"), fields.get("chain_mac")
        if mac is None:
            if self.sealed_seen or self._previous_sealed(n):
                return "no chain MAC after sealed events: written without the chain key"
            return None
        self.sealed_seen = True
        computed = link(fields.get("prev_hash"), n.topic, {
            **fields, "originator_id": str(n.originator_id),
            "originator_version": n.originator_version})
        if stored != computed:
            return "its fields do not give its chain hash: edited after it was recorded"
        if not hmac.compare_digest(str(mac), link_mac(self.key, computed)):
            return "chain MAC does not match: not recorded by the application (forged)"
        return None

    def _previous_sealed(self, n: Any) -> bool:
        if n.originator_version <= 1:
            return False
        previous = self.recorder.select_events(
            n.originator_id, lte=n.originator_version - 1, desc=True, limit=1)
        return bool(previous) and fields_of(self.mapper, previous[0]).get("chain_mac") is not None


def mark_refused(db: Database, name: str, error: ForgedLinkError) -> None:
    """The alert, for `status` and `/metrics`: where the relay `name` stopped and why."""
    db.execute(
        "INSERT INTO relay_refused_links (name, position, card_id, version, problem) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
        "card_id = excluded.card_id, version = excluded.version, problem = excluded.problem",
        (name, error.position, error.card_id, error.version, error.problem),
    )


def clear_refused(db: Database, name: str, position: int) -> None:
    """Published past the refused link (an operator removed the forgery): no alert any more."""
    db.execute("DELETE FROM relay_refused_links WHERE name = ? AND position <= ?",
               (name, position))


def refused_links(db: Database) -> dict[str, dict[str, Any]]:
    """Relays stopped at a forged link: name -> {position, card_id, version, problem}."""
    rows = db.execute(
        "SELECT name, position, card_id, version, problem FROM relay_refused_links")
    return {str(name): {"position": int(p), "card_id": str(c), "version": int(v),
                        "problem": str(why)} for name, p, c, v, why in rows}
