"""The vault's index of store ids (P2): a keyed hash of a customer id to the random id the store
keeps for them, deleted by their erasure, so the store's copy has an end date."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from domain.ids import STORE_ID_PREFIX
from infra.db import Database
from infra.vault_keys import SUBJECTS_PER_QUERY

SCHEMA = [
    # No customer id here, only its keyed hash: the row is the only link from a person to
    # what the store keeps of them, and an erasure (or the retention purge) deletes it.
    """CREATE TABLE IF NOT EXISTS store_ids (
        customer_hash TEXT PRIMARY KEY, store_id TEXT NOT NULL UNIQUE)""",
    # One row once the customers named in clear before the index existed were indexed.
    "CREATE TABLE IF NOT EXISTS store_ids_seeded (seeded INTEGER PRIMARY KEY)",
]


# The store ids one batch (a thread's unit of work) read at once: never kept across batches, so
# an erasure between two batches is seen by the next one.
_batch: ContextVar[dict[str, str] | None] = ContextVar("store_ids_of_batch", default=None)


class VaultStoreIds:
    """The store-id side of the vault (see Vault)."""

    db: Database
    _subject_key: bytes

    def _customer_hash(self, customer_id: str) -> str:
        message = b"store-id\x00" + customer_id.encode()
        return hmac.new(self._subject_key, message, hashlib.sha256).hexdigest()

    def resolve_store_id(self, customer_id: str) -> str | None:
        """The store id of a customer, or None: never seen, or erased since."""
        rows = self.db.execute("SELECT store_id FROM store_ids WHERE customer_hash = ?",
                               (self._customer_hash(customer_id),))
        return str(rows[0][0]) if rows else None

    def store_id(self, customer_id: str) -> str:
        """The customer's store id, a new random one the first time (or after an erasure):
        two writers of a new customer at once agree on the first one written."""
        batch = _batch.get()
        if batch is not None and customer_id in batch:
            return batch[customer_id]
        found = self.resolve_store_id(customer_id)
        if found is not None:
            return found
        self.db.execute(
            "INSERT INTO store_ids (customer_hash, store_id) VALUES (?, ?) "
            "ON CONFLICT (customer_hash) DO NOTHING",
            (self._customer_hash(customer_id), STORE_ID_PREFIX + secrets.token_hex(16)))
        found = self.resolve_store_id(customer_id)
        assert found is not None, "the row just written, or the other writer's"
        return found

    @contextmanager
    def store_ids_for_batch(self, customer_ids: Iterable[str]) -> Iterator[None]:
        """Within the block, `store_id` of these customers answers from a few queries made
        here for all of them (new ones given theirs), not from two or three per message."""
        wanted = {self._customer_hash(c): c for c in customer_ids}
        known = self._store_ids_by_hash(list(wanted))
        missing = [h for h in wanted if h not in known]
        if missing:
            self.db.executemany(
                "INSERT INTO store_ids (customer_hash, store_id) VALUES (?, ?) "
                "ON CONFLICT (customer_hash) DO NOTHING",
                [(h, STORE_ID_PREFIX + secrets.token_hex(16)) for h in missing])
            known.update(self._store_ids_by_hash(missing))  # ours, or a concurrent writer's
        token = _batch.set({wanted[h]: store for h, store in known.items()})
        try:
            yield
        finally:
            _batch.reset(token)

    def _store_ids_by_hash(self, hashes: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(hashes), SUBJECTS_PER_QUERY):
            chunk = hashes[start:start + SUBJECTS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            found.update((str(h), str(store)) for h, store in self.db.execute(
                f"SELECT customer_hash, store_id FROM store_ids WHERE customer_hash IN ({marks})",
                chunk))
        return found

    def forget_store_ids(self, store_ids: list[str]) -> int:
        """The links from people to these store ids deleted (an erasure, the retention
        purge): the customer ids no longer resolve; how many were there."""
        forgotten = 0
        for start in range(0, len(store_ids), SUBJECTS_PER_QUERY):
            chunk = store_ids[start:start + SUBJECTS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            with self.db.tx():
                forgotten += int(self.db.execute(
                    f"SELECT count(*) FROM store_ids WHERE store_id IN ({marks})", chunk)[0][0])
                self.db.execute(f"DELETE FROM store_ids WHERE store_id IN ({marks})", chunk)
        return forgotten

    def store_ids_seeded(self) -> bool:
        return bool(self.db.execute("SELECT count(*) FROM store_ids_seeded")[0][0])

    def seed_store_ids(self, clear_ids: Iterable[str]) -> None:
        """Customers the store already names in clear keep that id as their store id (their
        events are chained and append-only): indexed once, before any new one is given."""
        rows = [(self._customer_hash(c), c) for c in dict.fromkeys(clear_ids)]
        with self.db.tx():
            self.db.executemany("INSERT INTO store_ids (customer_hash, store_id) VALUES (?, ?) "
                                "ON CONFLICT DO NOTHING", rows)
            self.db.execute("INSERT INTO store_ids_seeded (seeded) VALUES (1) "
                            "ON CONFLICT DO NOTHING")
