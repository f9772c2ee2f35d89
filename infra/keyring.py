"""The key-encryption keys (KEKs) that wrap subject keys: kept outside the database, rotated."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(frozen=True)
class Kek:
    kek_id: str
    key: bytes
    created_at: datetime


class KekRing:
    """KEKs in a 0600 file beside the dev key, sealed under the master-derived wrapping key.

    They are never in the database, so no copy of it (WAL, backup, replica, dump) holds them:
    once a KEK is dropped from the ring, every subject key wrapped only under it is gone from
    those copies too. `path=None` keeps the ring in memory (in-memory stores, unit tests)."""

    def __init__(self, path: Path | None, *, sealing_key: bytes) -> None:
        self.path = path
        self._seal = AESGCM(sealing_key)
        self._lock = threading.Lock()
        self._keks: list[Kek] = []
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) last read
        self._load()

    def current(self) -> Kek:
        """The newest KEK, creating the first; another process's rotation is picked up."""
        self._load()
        if not self._keks:
            with self._exclusive():  # processes starting at once must agree on ONE first KEK
                if not self._keks:
                    self._write([new_kek()])
        return self._keks[-1]

    def get(self, kek_id: str) -> bytes | None:
        for kek in self._keks:
            if kek.kek_id == kek_id:
                return kek.key
        self._load()  # rotated by another process since we last looked
        return next((k.key for k in self._keks if k.kek_id == kek_id), None)

    def ids(self) -> list[str]:
        self._load()
        return [k.kek_id for k in self._keks]

    def add(self, kek: Kek) -> None:
        with self._exclusive():
            self._write([*self._keks, kek])

    def keep_only(self, kek_id: str) -> list[str]:
        """Destroys every KEK older than this one; returns the ids destroyed."""
        with self._exclusive():
            ids = [k.kek_id for k in self._keks]
            newer = ids[ids.index(kek_id) + 1 :]  # a concurrent rotation's newer KEK stays
            keep = [k for k in self._keks if k.kek_id == kek_id or k.kek_id in newer]
            dropped = [k.kek_id for k in self._keks if k not in keep]
            self._write(keep)
        return dropped

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Every change of the ring under one lock (threads and processes), on fresh contents."""
        with self._lock:
            if self.path is None:
                yield
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_CREAT | os.O_RDWR,
                         0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._load()
                yield
            finally:
                os.close(fd)

    def _load(self) -> None:
        if self.path is None:
            return
        try:  # one system call per check: a batch wraps a key per card
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if self._seen == (stat.st_ino, stat.st_mtime_ns, stat.st_size):
            return
        raw = self.path.read_bytes()
        nonce, body = raw[:12], raw[12:]
        entries = orjson.loads(self._seal.decrypt(nonce, body, b"giftcards-kek-ring"))
        self._keks = [
            Kek(e["id"], base64.b64decode(e["key"]), datetime.fromisoformat(e["created_at"]))
            for e in entries
        ]
        self._seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _write(self, keks: list[Kek]) -> None:
        self._keks = keks
        if self.path is None:
            return
        entries = [
            {"id": k.kek_id, "key": base64.b64encode(k.key).decode(),
             "created_at": k.created_at.isoformat()}
            for k in keks
        ]
        nonce = os.urandom(12)
        sealed = nonce + self._seal.encrypt(nonce, orjson.dumps(entries), b"giftcards-kek-ring")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Atomic replace: a reader sees the old ring or the new one, never half of one.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".kek-ring.")
        try:
            os.write(fd, sealed)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)  # mkstemp creates 0600
        stat = self.path.stat()
        self._seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def new_kek() -> Kek:
    return Kek(secrets.token_hex(8), AESGCM.generate_key(bit_length=256), datetime.now(UTC))
