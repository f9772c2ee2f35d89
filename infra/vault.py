"""Per-data-subject keys beside the event store: sealing, opening and crypto-shredding PII."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import IntegrityError

from infra.db import Database
from infra.keyring import KekRing, new_kek
from infra.vault_erasure import VaultErasure
from infra.vault_keys import (
    ERASED,
    ERASURES,
    FIELD_PREFIX,
    INSERT_ERASED_KEY,
    INSERT_FIELD_KEY,
    INSERT_SUBJECT_KEY,
    KEK_ID_LEN,
    KEK_MAGIC,
    PREFIX,
    SCHEMA,
    SUBJECTS_PER_QUERY,
    KekDestroyed,
    field_aad,
    seal_field_value,
    seal_value,
)
from infra.vault_session import KeySession, NewKeys
from infra.vault_store_ids import SCHEMA as STORE_ID_SCHEMA
from infra.vault_store_ids import VaultStoreIds


class Vault(VaultErasure, VaultStoreIds):
    """AES-256-GCM per subject; subject keys are wrapped by a rotating key-encryption key."""

    def __init__(
        self, db: Database, *, wrapping_key: bytes, subject_key: bytes, keks: KekRing | None = None,
        keys_with_events: bool = False,
    ) -> None:
        self.db = db
        self._legacy = AESGCM(wrapping_key)  # rows wrapped before KEKs: re-wrapped at rotation
        self.keks = keks or KekRing(None, sealing_key=wrapping_key)
        self._subject_key = subject_key
        # Whether the event recorder stores new keys in the events' own transaction (see
        # KeySession).
        self.keys_with_events = keys_with_events
        for statement in [*SCHEMA, *STORE_ID_SCHEMA]:
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
        return seal_value(key_id, key, subject_id, plaintext)

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
        return seal_value(key_id, self._unwrap(key_id, bytes(wrapped)), subject_id, plaintext)

    def seal_field(self, subject_id: str, field: str, plaintext: str) -> str:
        """Sealed under the subject's key for this field (`shred_field` destroys it)."""
        key = self._field_key(subject_id, field, create=True)
        assert key is not None
        return seal_field_value(key, subject_id, field, plaintext)

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
            return AESGCM(key).decrypt(raw[:12], raw[12:], field_aad(subject_id, field)).decode()
        except InvalidTag:  # sealed under a field key since destroyed by a rectification
            return ERASED

    def live_subjects(self) -> set[str]:
        rows = self.db.execute(
            "SELECT DISTINCT subject_id FROM subject_keys WHERE wrapped_key IS NOT NULL"
        )
        return {r[0] for r in rows}

    def kek_age_hours(self) -> float:
        """How long the current KEK has wrapped keys (rotation is due past the setting)."""
        return (datetime.now(UTC) - self.keks.current().created_at).total_seconds() / 3600

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
