"""Crypto-shredding in the vault (P2): keys destroyed, tombstones, old bytes proven gone."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

from infra.db import Database
from infra.vault_keys import CHECKPOINT_TRIES, ERASED, SQLITE_BUSY_TIMEOUT_MS, Shredding
from infra.vault_session import lock_id


class VaultErasure:
    """The erasure side of the vault (see Vault): destroys keys and proves them gone."""

    db: Database
    _subject_key: bytes

    def tombstone(self, subject_id: str) -> str:
        """The key of a subject's erasure tombstone: a keyed hash, so it names no one."""
        message = b"erasure\x00" + subject_id.encode()
        return hmac.new(self._subject_key, message, hashlib.sha256).hexdigest()[:32]

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
            # Every destroyed row of the subject (earlier erasures' too) forgets whose it was.
            self.db.execute(
                "UPDATE subject_keys SET subject_id = ? "
                "WHERE subject_id = ? AND wrapped_key IS NULL",
                (ERASED, subject_id),
            )
            self.db.execute("DELETE FROM field_keys WHERE subject_id = ?", (subject_id,))
        return int(live)

    def forget_erased(self) -> int:
        """Relabels destroyed keys still labelled with their subject (erased by an older
        vault); returns how many (`gdpr purge`, hourly in `serve`)."""
        # The label as a literal, as in the partial index's predicate: a bound parameter would
        # not let either database prove the index applies (a full scan every hour).
        labelled_rows = f"FROM subject_keys WHERE wrapped_key IS NULL AND subject_id <> '{ERASED}'"
        with self.db.tx():
            labelled = self.db.execute(f"SELECT count(*) {labelled_rows}")[0][0]
            if labelled:
                self.db.execute(
                    f"UPDATE subject_keys SET subject_id = '{ERASED}' WHERE key_id IN "
                    f"(SELECT key_id {labelled_rows})")
        if labelled and not self.db.is_postgres:
            self._checkpoint()  # the old labels out of the WAL (secure_delete zeroed the cells)
        return int(labelled)

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
            # Under the tombstone's keyed hash: the pending row must not name whom it erased.
            self.db.execute(
                "INSERT INTO pending_shreds (subject_id, erased_at) VALUES (?, ?) "
                "ON CONFLICT (subject_id) DO NOTHING",
                (self.tombstone(subject_id), now),
            )
        return "pending"

    def pending_shreds(self) -> list[str]:
        """The tombstones (keyed hashes) of erasures whose old bytes are not yet proven gone."""
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
