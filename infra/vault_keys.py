"""The vault's tables and token formats, and one value sealed under one key."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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
    # Erasures whose old key bytes could not yet be proven gone (a reader held the WAL), by
    # their tombstone's keyed hash (the column's name is older than that).
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
    # Destroyed keys still labelled with their subject (written by a vault that kept the
    # label): `forget_erased` relabels them; empty once it ran, so the sweep reads nothing.
    f"""CREATE INDEX IF NOT EXISTS subject_keys_erased_labelled ON subject_keys (key_id)
        WHERE wrapped_key IS NULL AND subject_id <> '{ERASED}'""",
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
# A destroyed key's row is kept (a sealed value names its key id: it opens as `[erased]`) but
# labelled `[erased]`, never with its subject: the vault forgets whom it erased (P2).
INSERT_ERASED_KEY = (
    "INSERT INTO subject_keys (key_id, subject_id, wrapped_key, created_at, erased_at) "
    f"VALUES (?, '{ERASED}', NULL, ?, ?)"
)
ERASURES = "#erasures"  # keys_of's row of a subject's erasure count (no field has this name)
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
Shredding = Literal["verified", "pending", "final_after_kek_rotation"]



class KekDestroyed(Exception):
    """A subject key whose KEK is not in the ring: rotated away (an old copy of the table,
    unrecoverable by design) or a ring file not shared by every process (misconfiguration)."""


def seal_value(key_id: str, key: bytes, subject_id: str, plaintext: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), subject_id.encode())
    return f"{PREFIX}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def seal_field_value(key: bytes, subject_id: str, field: str, plaintext: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), field_aad(subject_id, field))
    return f"{FIELD_PREFIX}:{field}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def field_aad(subject_id: str, field: str) -> bytes:
    return f"{subject_id}\x00{field}".encode()
