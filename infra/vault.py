"""Per-data-subject keys beside the event store: sealing, opening and crypto-shredding PII."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import IntegrityError

from infra.db import Database
from infra.keyring import KekRing, new_kek

ERASED = "[erased]"
PREFIX = "gc1"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS subject_keys (
        key_id TEXT PRIMARY KEY,
        subject_id TEXT NOT NULL,
        wrapped_key BYTEA,
        created_at TEXT NOT NULL,
        erased_at TEXT)""",
    "CREATE INDEX IF NOT EXISTS subject_keys_subject ON subject_keys (subject_id)",
    # Erasures whose old key bytes could not yet be proven gone (a reader held the WAL).
    """CREATE TABLE IF NOT EXISTS pending_shreds (
        subject_id TEXT PRIMARY KEY, erased_at TEXT NOT NULL)""",
    # Art. 16: a rectifiable field (e-mail, name) is sealed under a key of its own, itself
    # sealed under the subject's key; a rectification deletes it, so the old value is gone
    # while the subject's other data stays readable (an erasure makes every one unreadable).
    """CREATE TABLE IF NOT EXISTS field_keys (
        subject_id TEXT NOT NULL, field TEXT NOT NULL, sealed_key TEXT NOT NULL,
        PRIMARY KEY (subject_id, field))""",
    # Erasure tombstones, keyed by a keyed hash of the subject (no id kept here): a unit of work
    # that read a subject's keys before an erasure and creates their first key commits that key
    # already destroyed (see NewKeys.settle).
    """CREATE TABLE IF NOT EXISTS subject_erasures (
        tombstone TEXT PRIMARY KEY, erasures INTEGER NOT NULL, erased_at TEXT NOT NULL)""",
]
FIELD_PREFIX = "gcf1"
KEK_MAGIC = b"K"  # wrapped_key = K + kek id (16 hex) + nonce + ciphertext; older rows: no KEK
KEK_ID_LEN = 16
CHECKPOINT_TRIES = 5
SQLITE_BUSY_TIMEOUT_MS = 30_000  # infra.db connects with timeout=30
SUBJECTS_PER_QUERY = 400  # below SQLite's old limit of 999 host parameters
INSERT_SUBJECT_KEY = (
    "INSERT INTO subject_keys (key_id, subject_id, wrapped_key, created_at) VALUES (?, ?, ?, ?)"
)
# No ON CONFLICT: a field key another writer stored first fails the unit of work, which is
# redone on fresh state and then seals under that key (an IntegrityError is a conflict).
INSERT_FIELD_KEY = "INSERT INTO field_keys (subject_id, field, sealed_key) VALUES (?, ?, ?)"
INSERT_ERASED_KEY = (
    "INSERT INTO subject_keys (key_id, subject_id, wrapped_key, created_at, erased_at) "
    "VALUES (?, ?, NULL, ?, ?)"
)
ERASURES = "#erasures"  # keys_of's row of a subject's erasure count (no field has this name)
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
Shredding = Literal["verified", "pending", "final_after_kek_rotation"]


class Vault:
    """AES-256-GCM per subject; subject keys are wrapped by a rotating key-encryption key."""

    def __init__(
        self, db: Database, *, wrapping_key: bytes, subject_key: bytes, keks: KekRing | None = None
    ) -> None:
        self.db = db
        self._legacy = AESGCM(wrapping_key)  # rows wrapped before KEKs: re-wrapped at rotation
        self.keks = keks or KekRing(None, sealing_key=wrapping_key)
        self._subject_key = subject_key
        # Set by the composition root when the event recorder stores new keys in the events'
        # own transaction (see KeySession).
        self.keys_with_events = False
        for statement in SCHEMA:
            sql = statement if db.is_postgres else statement.replace("BYTEA", "BLOB")
            db.execute(sql)
        if not db.is_postgres:
            # Freed cell space is zeroed, so a destroyed key leaves no bytes in the file.
            db.execute("PRAGMA secure_delete=ON")

    def subject_for_email(self, email: str) -> str:
        """A recipient has no account: their pseudonym is a keyed hash of the email."""
        normalized = email.strip().lower().encode()
        digest = hmac.new(self._subject_key, normalized, hashlib.sha256).hexdigest()
        return f"r-{digest[:32]}"

    def seal(self, subject_id: str, plaintext: str) -> str:
        key_id, key = self._active_key(subject_id)
        return _seal(key_id, key, subject_id, plaintext)

    def seal_if_live(self, subject_id: str, plaintext: str) -> str | None:
        """Sealed under the subject's live key; None if they have none (erased): never a new
        key, for a copy of data that was sealed under one before (a sent e-mail)."""
        rows = self.db.execute(
            "SELECT key_id, wrapped_key FROM subject_keys "
            "WHERE subject_id = ? AND wrapped_key IS NOT NULL ORDER BY created_at LIMIT 1",
            (subject_id,),
        )
        if not rows:
            return None
        key_id, wrapped = rows[0]
        return _seal(key_id, self._unwrap(key_id, bytes(wrapped)), subject_id, plaintext)

    def seal_field(self, subject_id: str, field: str, plaintext: str) -> str:
        """Sealed under the subject's key for this field (`shred_field` destroys it)."""
        key = self._field_key(subject_id, field, create=True)
        assert key is not None
        return _seal_field(key, subject_id, field, plaintext)

    def session(self) -> KeySession:
        """The vault for one unit of work (see KeySession)."""
        return KeySession(self, self.keys_with_events)

    def keys_of(self, subjects: list[str]) -> list[tuple[Any, ...]]:
        """The live keys, the field keys and the erasure counts of many subjects in one query
        per 400 subjects: (subject, key id, wrapped key, created at), (subject, field, None,
        sealed key) and (subject, ERASURES, None, count)."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(subjects), SUBJECTS_PER_QUERY):
            chunk = subjects[start : start + SUBJECTS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            tombstones = {self.tombstone(s): s for s in chunk}
            found = self.db.execute(
                "SELECT subject_id, key_id, wrapped_key, created_at FROM subject_keys "
                f"WHERE subject_id IN ({marks}) AND wrapped_key IS NOT NULL "
                "UNION ALL SELECT subject_id, field, NULL, sealed_key FROM field_keys "
                f"WHERE subject_id IN ({marks}) "
                f"UNION ALL SELECT tombstone, '{ERASURES}', NULL, CAST(erasures AS TEXT) "
                f"FROM subject_erasures WHERE tombstone IN ({marks})",
                (*chunk, *chunk, *tombstones),
            )
            rows += [(tombstones[r[0]], *r[1:]) if r[1] == ERASURES else r for r in found]
        return rows

    def tombstone(self, subject_id: str) -> str:
        """The key of a subject's erasure tombstone: a keyed hash, so it names no one."""
        message = b"erasure\x00" + subject_id.encode()
        return hmac.new(self._subject_key, message, hashlib.sha256).hexdigest()[:32]

    def new_key(self, subject_id: str) -> tuple[str, bytes, tuple[str, str, bytes, str]]:
        """A new subject key: its id, the key, and its row (not stored yet)."""
        key_id, key = uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)
        row = (key_id, subject_id, self._wrap_key(key_id, key), datetime.now(UTC).isoformat())
        return key_id, key, row

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        return self._unwrap(key_id, wrapped)

    def store(self, keys: NewKeys) -> None:
        """New keys in one transaction of their own (a store that cannot take them with its
        events: committed before the events, never after)."""
        if not keys:
            return
        self.before_writing_keys()
        try:
            with self.db.tx():
                keys.settle(self.db.execute, postgres=self.db.is_postgres)
                self.db.executemany(INSERT_SUBJECT_KEY, keys.subject_keys)
                self.db.executemany(INSERT_FIELD_KEY, keys.field_keys)
                self.db.executemany(INSERT_ERASED_KEY, keys.erased_keys)
        except sqlite3.IntegrityError as conflict:
            raise IntegrityError(str(conflict)) from conflict

    def shred_field(self, subject_id: str, field: str) -> int:
        """Destroys the field's key: every value sealed under it so far becomes unreadable."""
        with self.db.tx():
            found = self.db.execute(
                "SELECT count(*) FROM field_keys WHERE subject_id = ? AND field = ?",
                (subject_id, field),
            )[0][0]
            self.db.execute(
                "DELETE FROM field_keys WHERE subject_id = ? AND field = ?", (subject_id, field)
            )
        return int(found)

    def before_writing_keys(self) -> None:
        """SQLite: the next writer of keys finishes a pending erasure first."""
        if not self.db.is_postgres and self.pending_shreds():
            self.complete_pending()

    def _field_key(self, subject_id: str, field: str, *, create: bool) -> bytes | None:
        select = "SELECT sealed_key FROM field_keys WHERE subject_id = ? AND field = ?"
        rows = self.db.execute(select, (subject_id, field))
        if not rows and create:
            sealed = self.seal(subject_id, base64.b64encode(AESGCM.generate_key(256)).decode())
            self.db.execute(  # a concurrent writer's key wins: both then read the same row
                "INSERT INTO field_keys (subject_id, field, sealed_key) VALUES (?, ?, ?) "
                "ON CONFLICT (subject_id, field) DO NOTHING",
                (subject_id, field, sealed),
            )
            rows = self.db.execute(select, (subject_id, field))
        clear = self.open(subject_id, rows[0][0]) if rows else ERASED
        if clear == ERASED and rows and create:
            # The subject was erased between the two reads: a new field key under a new key.
            self.db.execute("DELETE FROM field_keys WHERE subject_id = ? AND field = ? "
                            "AND sealed_key = ?", (subject_id, field, rows[0][0]))
            return self._field_key(subject_id, field, create=True)
        return None if clear == ERASED else base64.b64decode(clear)

    def open(self, subject_id: str, token: str) -> str:
        """The clear text, or `[erased]` once the subject's key has been destroyed."""
        try:
            prefix, key_id, body = token.split(":", 2)
        except ValueError:
            return ERASED
        if prefix == FIELD_PREFIX:
            return self._open_field(subject_id, key_id, body)
        key = self._key_by_id(key_id) if prefix == PREFIX else None
        if key is None:
            return ERASED
        raw = base64.urlsafe_b64decode(body)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], subject_id.encode()).decode()
        except InvalidTag:
            return ERASED

    def owner_of(self, token: str) -> str | None:
        """The subject whose live key sealed `token` (a `gc1` token), or None once erased."""
        parts = token.split(":", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        rows = self.db.execute(
            "SELECT subject_id FROM subject_keys WHERE key_id = ? AND wrapped_key IS NOT NULL",
            (parts[1],),
        )
        return str(rows[0][0]) if rows else None

    def _open_field(self, subject_id: str, field: str, body: str) -> str:
        key = self._field_key(subject_id, field, create=False)
        if key is None:
            return ERASED
        raw = base64.urlsafe_b64decode(body)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], _field_aad(subject_id, field)).decode()
        except InvalidTag:  # sealed under a field key since destroyed by a rectification
            return ERASED

    def erase(self, subject_id: str, *, tombstone: bool = True) -> int:
        """Crypto-shredding: destroy every key of the subject; returns how many were live.
        `tombstone=False` for a key no unit of work can be creating at the time (a card's own
        code key, erased once delivered): no tombstone, no wait for batches in flight."""
        now = datetime.now(UTC).isoformat()
        with self.db.tx():
            if tombstone:
                self._tombstone(self.tombstone(subject_id), now)
            live = self.db.execute(
                "SELECT count(*) FROM subject_keys "
                "WHERE subject_id = ? AND wrapped_key IS NOT NULL",
                (subject_id,),
            )[0][0]
            self.db.execute(
                "UPDATE subject_keys SET wrapped_key = NULL, erased_at = ? "
                "WHERE subject_id = ? AND wrapped_key IS NOT NULL",
                (now, subject_id),
            )
            self.db.execute("DELETE FROM field_keys WHERE subject_id = ?", (subject_id,))
        return int(live)

    def _tombstone(self, tombstone: str, now: str) -> None:
        """In the erasure's transaction, before its keys are destroyed."""
        if self.db.is_postgres:
            # Waits for the units of work creating this subject's keys (they hold the lock
            # shared until they commit): the UPDATE that follows then sees their keys.
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (lock_id(tombstone),))
        # A unit committing later sees it and writes its new key destroyed.
        self.db.execute(
            "INSERT INTO subject_erasures (tombstone, erasures, erased_at) VALUES (?, 1, ?) "
            "ON CONFLICT (tombstone) DO UPDATE SET "
            "erasures = subject_erasures.erasures + 1, erased_at = excluded.erased_at",
            (tombstone, now),
        )

    def finish_shredding(self, subject_ids: list[str]) -> Shredding:
        """Proves the destroyed keys' old bytes gone, or records the erasure as pending.

        SQLite: a reader holding an old snapshot keeps the old page in the WAL and the main file;
        the checkpoint then reports busy. Never a false "verified": pending erasures are finished
        by the next key creation, `gdpr purge` or `serve`. PostgreSQL: dead tuples are vacuumed,
        but its WAL, backups and replicas keep them: final once the KEK they were wrapped under
        is rotated away (`gdpr rotate-kek`)."""
        if self.db.is_postgres:
            self.db.execute("VACUUM subject_keys")
            self.db.execute("VACUUM field_keys")
            return "final_after_kek_rotation"
        if self._checkpoint():
            return "verified"
        now = datetime.now(UTC).isoformat()
        for subject_id in subject_ids:
            self.db.execute(
                "INSERT INTO pending_shreds (subject_id, erased_at) VALUES (?, ?) "
                "ON CONFLICT (subject_id) DO NOTHING",
                (subject_id, now),
            )
        return "pending"

    def live_subjects(self) -> set[str]:
        rows = self.db.execute(
            "SELECT DISTINCT subject_id FROM subject_keys WHERE wrapped_key IS NOT NULL"
        )
        return {r[0] for r in rows}

    def kek_age_hours(self) -> float:
        """How long the current KEK has wrapped keys (rotation is due past the setting)."""
        return (datetime.now(UTC) - self.keks.current().created_at).total_seconds() / 3600

    def pending_shreds(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT subject_id FROM pending_shreds")]

    def complete_pending(self) -> list[str]:
        """Finishes pending erasures once no reader holds the old pages; returns those done."""
        pending = [] if self.db.is_postgres else self.pending_shreds()
        if not pending or not self._checkpoint():
            return []
        self.db.execute("DELETE FROM pending_shreds")
        return pending

    def _checkpoint(self) -> bool:
        """SQLite: every WAL frame copied back (secure_delete zeroed the old cells) and the WAL
        truncated; `busy` means a reader still needs the old pages."""
        # TRUNCATE would wait for readers as long as the busy timeout (30 s) on every try.
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            for attempt in range(CHECKPOINT_TRIES):
                busy, _log, _done = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")[0]
                if busy == 0:
                    return True
                time.sleep(0.05 * 2**attempt)
            return False
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    def rotate(self) -> dict[str, object]:
        """A new KEK; every live subject key re-wrapped under it; every older KEK destroyed.

        Afterwards a subject key erased before the rotation cannot be unwrapped from any old
        copy of the key table: its KEK no longer exists anywhere."""
        kek = new_kek()
        self.keks.add(kek)
        rewrapped = 0
        while True:  # until no live key is left under an older KEK (writers race the scan)
            rows = self.db.execute(
                "SELECT key_id, wrapped_key FROM subject_keys WHERE wrapped_key IS NOT NULL"
            )
            stale = [(k, bytes(w)) for k, w in rows if self._kek_of(bytes(w)) != kek.kek_id]
            if not stale:
                break
            with self.db.tx():
                for key_id, wrapped in stale:
                    self.db.execute(
                        "UPDATE subject_keys SET wrapped_key = ? "
                        "WHERE key_id = ? AND wrapped_key IS NOT NULL",
                        (self._wrap_key(key_id, self._unwrap(key_id, wrapped)), key_id),
                    )
            rewrapped += len(stale)
        destroyed = self.keks.keep_only(kek.kek_id)
        return {"kek_id": kek.kek_id, "keys_rewrapped": rewrapped, "keks_destroyed": destroyed,
                "rotated_at": kek.created_at.isoformat()}

    def _active_key(self, subject_id: str) -> tuple[str, bytes]:
        # No cache: another process may erase the subject at any moment.
        rows = self.db.execute(
            "SELECT key_id, wrapped_key FROM subject_keys "
            "WHERE subject_id = ? AND wrapped_key IS NOT NULL ORDER BY created_at LIMIT 1",
            (subject_id,),
        )
        if rows:
            key_id, wrapped = rows[0]
            return key_id, self._unwrap(key_id, bytes(wrapped))
        # Committed before the events that use it; an unused key is harmless.
        key_id, key, row = self.new_key(subject_id)
        if not self.db.is_postgres and self.pending_shreds():
            self.complete_pending()  # the next writer finishes a pending erasure
        self.db.execute(INSERT_SUBJECT_KEY, row)
        return key_id, key

    def _key_by_id(self, key_id: str) -> bytes | None:
        rows = self.db.execute(
            "SELECT wrapped_key FROM subject_keys WHERE key_id = ? AND wrapped_key IS NOT NULL",
            (key_id,),
        )
        # A live key whose KEK is missing is a misconfiguration (GIFTCARDS_KEK_FILE not shared
        # by every process), never shown as "[erased]": KekDestroyed is raised.
        return self._unwrap(key_id, bytes(rows[0][0])) if rows else None

    def _wrap_key(self, key_id: str, key: bytes) -> bytes:
        kek = self.keks.current()
        nonce = os.urandom(12)
        sealed = AESGCM(kek.key).encrypt(nonce, key, key_id.encode())
        return KEK_MAGIC + kek.kek_id.encode() + nonce + sealed

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        kek_id = self._kek_of(wrapped)
        if kek_id is None:
            return self._legacy.decrypt(wrapped[:12], wrapped[12:], key_id.encode())
        kek = self.keks.get(kek_id)
        if kek is None:
            raise KekDestroyed(f"key {key_id} was wrapped under destroyed KEK {kek_id}")
        body = wrapped[1 + KEK_ID_LEN :]
        return AESGCM(kek).decrypt(body[:12], body[12:], key_id.encode())

    @staticmethod
    def _kek_of(wrapped: bytes) -> str | None:
        # A legacy row is nonce (12) + key (32) + tag (16) = 60 bytes; a KEK-wrapped one 77.
        if len(wrapped) == 1 + KEK_ID_LEN + 60 and wrapped[:1] == KEK_MAGIC:
            return wrapped[1 : 1 + KEK_ID_LEN].decode()
        return None


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
    erased_keys: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)

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
        self.erased_keys += [(k, s, created, erased[s])
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

    def __init__(self, vault: Vault, keys_with_events: bool = False) -> None:
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
        return _seal(key_id, key, subject_id, plaintext)

    def seal_new_subject(self, subject_id: str, plaintext: str) -> str:
        """For a subject created by this unit of work (a new card's code): nothing to read."""
        self._active.setdefault(subject_id, None)
        return self.seal(subject_id, plaintext)

    def seal_field(self, subject_id: str, field: str, plaintext: str) -> str:
        return _seal_field(self._field_key(subject_id, field), subject_id, field, plaintext)

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


class KekDestroyed(Exception):
    """A subject key whose KEK is not in the ring: rotated away (an old copy of the table,
    unrecoverable by design) or a ring file not shared by every process (misconfiguration)."""


def _seal(key_id: str, key: bytes, subject_id: str, plaintext: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), subject_id.encode())
    return f"{PREFIX}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def _seal_field(key: bytes, subject_id: str, field: str, plaintext: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), _field_aad(subject_id, field))
    return f"{FIELD_PREFIX}:{field}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def _field_aad(subject_id: str, field: str) -> bytes:
    return f"{subject_id}\x00{field}".encode()
