"""Per-data-subject keys beside the event store: sealing, opening and crypto-shredding PII."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.db import Database

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
]


class Vault:
    """AES-256-GCM per subject; subject keys are wrapped by a key derived from the master."""

    def __init__(self, db: Database, *, wrapping_key: bytes, subject_key: bytes) -> None:
        self.db = db
        self._wrap = AESGCM(wrapping_key)
        self._subject_key = subject_key
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
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), subject_id.encode())
        return f"{PREFIX}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, subject_id: str, token: str) -> str:
        """The clear text, or `[erased]` once the subject's key has been destroyed."""
        try:
            prefix, key_id, body = token.split(":", 2)
        except ValueError:
            return ERASED
        key = self._key_by_id(key_id) if prefix == PREFIX else None
        if key is None:
            return ERASED
        raw = base64.urlsafe_b64decode(body)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], subject_id.encode()).decode()
        except InvalidTag:
            return ERASED

    def erase(self, subject_id: str) -> int:
        """Crypto-shredding: destroy every key of the subject; returns how many were live."""
        now = datetime.now(UTC).isoformat()
        with self.db.tx():
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
        self._drop_old_versions()
        return int(live)

    def _drop_old_versions(self) -> None:
        """Old row versions still hold the wrapped key: the WAL (SQLite), dead tuples (PG)."""
        if self.db.is_postgres:
            # Frees dead tuples; PostgreSQL's own WAL and backups keep them until recycled.
            self.db.execute("VACUUM subject_keys")
        else:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
        key_id, key = uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)
        self.db.execute(
            "INSERT INTO subject_keys (key_id, subject_id, wrapped_key, created_at) "
            "VALUES (?, ?, ?, ?)",
            (key_id, subject_id, self._wrap_key(key_id, key), datetime.now(UTC).isoformat()),
        )
        return key_id, key

    def _key_by_id(self, key_id: str) -> bytes | None:
        rows = self.db.execute(
            "SELECT wrapped_key FROM subject_keys WHERE key_id = ? AND wrapped_key IS NOT NULL",
            (key_id,),
        )
        return self._unwrap(key_id, bytes(rows[0][0])) if rows else None

    def _wrap_key(self, key_id: str, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._wrap.encrypt(nonce, key, key_id.encode())

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        return self._wrap.decrypt(wrapped[:12], wrapped[12:], key_id.encode())
