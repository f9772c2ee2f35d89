"""The vault in one unit of work: keys read once, new keys committed with or before events."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.db import Database
from infra.vault_keys import ERASURES, PREFIX, SUBJECTS_PER_QUERY, Run, seal_field_value, seal_value


class KeyStore(Protocol):
    """What a unit of work needs of the vault (infra.vault.Vault)."""

    db: Database

    def subject_for_email(self, email: str) -> str: ...

    def keys_of(self, subjects: list[str]) -> list[tuple[Any, ...]]: ...

    def store(self, keys: NewKeys) -> None: ...

    def before_writing_keys(self) -> None: ...

    def new_key(self, subject_id: str) -> tuple[str, bytes, tuple[str, str, bytes, str]]: ...

    def tombstone(self, subject_id: str) -> str: ...

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes: ...


# PostgreSQL's advisory locks of the subjects' keys: one of 64 buckets per subject, so that a
# batch of hundreds of new subjects takes at most 64 locks (the shared lock table is small);
# an erasure then waits for the batches holding its bucket, which are short.
LOCK_BUCKETS = 64
LOCK_BASE = 0x7661756C74000000  # "vault" in the high bytes: no other advisory lock uses it


def lock_id(tombstone: str) -> int:
    """The advisory lock of one subject's keys (their bucket's)."""
    return LOCK_BASE + int(tombstone[:8], 16) % LOCK_BUCKETS


@dataclass
class NewKeys:
    """The key rows one unit of work created, to be committed with its events."""

    subject_keys: list[tuple[str, str, bytes, str]] = dataclasses.field(default_factory=list)
    field_keys: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    # Subjects whose first key this unit creates after reading their keys: subject ->
    # (tombstone, erasures seen then). Fresh subjects (a new card's code) are not watched.
    watched: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)
    # Keys of subjects erased since the unit read them: committed already destroyed.
    erased_keys: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.subject_keys or self.field_keys)

    def settle(self, run: Run, *, postgres: bool) -> None:
        """In the transaction that commits the keys, before they are written: the new key of a
        subject erased since the unit read their keys is written destroyed, and their new field
        keys not at all, so what the unit sealed for them is unreadable, as if the erasure came
        a moment after the commit. PostgreSQL: the subjects' locks held shared until the
        commit make an erasure wait for it; SQLite: the write transaction is exclusive."""
        watched = {s: w for s, w in self.watched.items()
                   if any(row[1] == s for row in self.subject_keys)}
        if not watched:
            return
        stones = sorted(t for t, _ in watched.values())
        if postgres:
            run("SELECT count(pg_advisory_xact_lock_shared(k)) FROM unnest(?::bigint[]) AS k",
                (sorted({lock_id(t) for t in stones}),))
        counts: dict[str, tuple[int, str]] = {}
        for start in range(0, len(stones), SUBJECTS_PER_QUERY):
            chunk = stones[start : start + SUBJECTS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            for stone, erasures, erased_at in run(
                "SELECT tombstone, erasures, erased_at FROM subject_erasures "
                f"WHERE tombstone IN ({marks})", chunk):
                counts[stone] = (int(erasures), str(erased_at))
        erased: dict[str, str] = {}
        for subject, (stone, seen) in watched.items():
            now = counts.get(stone)
            if now is not None and now[0] > seen:
                erased[subject] = now[1]
        if not erased:
            return
        self.erased_keys += [(k, created, erased[s])
                             for k, s, _w, created in self.subject_keys if s in erased]
        self.subject_keys = [row for row in self.subject_keys if row[1] not in erased]
        self.field_keys = [row for row in self.field_keys if row[0] not in erased]


class KeySession:
    """The vault as one unit of work uses it: each subject's keys read once (a batch's in one
    query, see `prefetch`), and the keys it creates held until the unit commits. A recorder
    that can (PostgreSQL, SQLite) inserts them in the events' own transaction: a card and the
    key of its sealed code are committed together or not at all, one commit for a whole batch.
    Elsewhere (a store without the vault's tables) they are committed in one transaction just
    before the events (never after).

    Keys read here may be erased by another process before the unit commits: what it seals
    is then unreadable at once, as it would be had the erasure come a moment later."""

    def __init__(self, vault: KeyStore, keys_with_events: bool = False) -> None:
        self.vault = vault
        self.keys_with_events = keys_with_events
        self.new = NewKeys()
        self._active: dict[str, str | None] = {}  # subject -> the id of its oldest live key
        self._wrapped: dict[str, bytes] = {}  # key id -> wrapped key, unwrapped when used
        self._by_id: dict[str, bytes] = {}
        self._sealed_fields: dict[tuple[str, str], str] = {}  # stored field keys, still sealed
        self._fields: dict[tuple[str, str], bytes] = {}
        self._erasures: dict[str, int] = {}  # subject -> its erasures when its keys were read

    def subject_for_email(self, email: str) -> str:
        return self.vault.subject_for_email(email)

    def prefetch(self, subjects: Iterable[str]) -> None:
        """Read the keys of many subjects in one query."""
        wanted = sorted({s for s in subjects if s and s not in self._active})
        if not wanted:
            return
        oldest: dict[str, tuple[str, str]] = {}
        for subject, name, wrapped, text in self.vault.keys_of(wanted):
            if name == ERASURES:
                self._erasures[subject] = int(text)
                continue
            if wrapped is None:
                self._sealed_fields[(subject, name)] = text
                continue
            self._wrapped[name] = bytes(wrapped)
            if subject not in oldest or text < oldest[subject][0]:
                oldest[subject] = (text, name)
        for subject in wanted:
            found = oldest.get(subject)
            self._active[subject] = found[1] if found else None
            self._erasures.setdefault(subject, 0)

    def seal(self, subject_id: str, plaintext: str) -> str:
        key_id, key = self._active_key(subject_id)
        return seal_value(key_id, key, subject_id, plaintext)

    def seal_new_subject(self, subject_id: str, plaintext: str) -> str:
        """For a subject created by this unit of work (a new card's code): nothing to read."""
        self._active.setdefault(subject_id, None)
        return self.seal(subject_id, plaintext)

    def seal_field(self, subject_id: str, field: str, plaintext: str) -> str:
        return seal_field_value(self._field_key(subject_id, field), subject_id, field, plaintext)

    def before_commit(self) -> dict[str, Any]:
        """The recorder's arguments that commit the new keys with the events; or, where the
        recorder cannot, the keys committed now, just before the events."""
        if not self.new:
            return {}
        if self.keys_with_events:
            self.vault.before_writing_keys()
            return {"vault_keys": self.new}
        self.vault.store(self.new)
        return {}

    def _active_key(self, subject_id: str) -> tuple[str, bytes]:
        if subject_id not in self._active:
            self.prefetch([subject_id])
        active = self._active[subject_id]
        key = self._key(active) if active is not None else None
        if active is None or key is None:
            active, key, row = self.vault.new_key(subject_id)
            self.new.subject_keys.append(row)
            if subject_id in self._erasures:
                self.new.watched[subject_id] = (
                    self.vault.tombstone(subject_id), self._erasures[subject_id])
            self._active[subject_id], self._by_id[active] = active, key
        return active, key

    def _field_key(self, subject_id: str, field: str) -> bytes:
        wanted = (subject_id, field)
        if wanted in self._fields:
            return self._fields[wanted]
        if subject_id not in self._active:
            self.prefetch([subject_id])
        sealed = self._sealed_fields.get(wanted)
        clear = self._open(subject_id, sealed) if sealed is not None else None
        if clear is None:
            if sealed is not None:
                # Sealed under a key erased since: unusable by anyone, so removed now, and
                # this unit's new field key takes its place.
                self.vault.db.execute(
                    "DELETE FROM field_keys WHERE subject_id = ? AND field = ? "
                    "AND sealed_key = ?", (subject_id, field, sealed))
            clear = base64.b64encode(AESGCM.generate_key(256)).decode()
            self.new.field_keys.append((subject_id, field, self.seal(subject_id, clear)))
        key = self._fields[wanted] = base64.b64decode(clear)
        return key

    def _key(self, key_id: str) -> bytes | None:
        if key_id not in self._by_id and key_id in self._wrapped:
            self._by_id[key_id] = self.vault.unwrap(key_id, self._wrapped.pop(key_id))
        return self._by_id.get(key_id)

    def _open(self, subject_id: str, token: str) -> str | None:
        try:
            prefix, key_id, body = token.split(":", 2)
        except ValueError:
            return None
        key = self._key(key_id) if prefix == PREFIX else None
        if key is None:
            return None
        raw = base64.urlsafe_b64decode(body)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], subject_id.encode()).decode()
        except InvalidTag:
            return None
