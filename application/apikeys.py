"""API key use cases: create (the key shown once), authenticate, list, revoke."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from uuid import UUID, uuid4

from eventsourcing.utils import get_topic

from application.card_base import Json, iso
from application.cards import GiftCards
from application.unit_of_work import UnitOfWork
from domain.apikeys import ApiKey
from domain.errors import refuse
from domain.streams import Index, stream_id

KEY_PREFIX = "gck_"
KEY_BY_ID = "api-key-id"


def key_hash(key: str) -> str:
    """A key holds 256 random bits: one SHA-256 is enough, no slow password hash needed."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def well_formed(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and len(key) <= 100


CACHE_ENTRIES = 10_000  # then the cache starts again: an attacker's random keys cannot grow it


class ApiKeys:
    """`cache_seconds`: how long `authenticate` reuses what it read of a key (found, unknown or
    revoked), so a busy API does not read the store on every request; a revocation made by
    another process is therefore refused everywhere within that time."""

    def __init__(
        self, cards: GiftCards, *, cache_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cards = cards
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[UUID, tuple[float, ApiKey | None]] = {}

    def create(self, *, name: str, scopes: list[str]) -> Json:
        return self.cards.run(lambda uow: self.issue(uow, name=name, scopes=scopes))

    def issue(
        self, uow: UnitOfWork, *, name: str, scopes: list[str], operator: str | None = None,
        expires_at: datetime | None = None,
    ) -> Json:
        """A new key in the caller's unit of work: its JSON with the key, shown this once."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = uuid4()
        api_key = ApiKey.create(
            key_hash=key_hash(key), key_id=key_id, name=name, scopes=scopes,
            at=self.cards.now(), operator=operator, expires_at=expires_at,
        )
        uow.add(api_key, Index.register(KEY_BY_ID, str(key_id), api_key.id))
        return {**key_json(api_key), "key": key}

    def authenticate(self, key: str) -> ApiKey | None:
        """The live key, or None (unknown, revoked or expired): the caller answers all alike."""
        if not well_formed(key):
            return None
        stream = ApiKey.id_for(key_hash(key))
        known, found = self._reused(stream)
        if known:
            return self._unexpired(found)
        stored = UnitOfWork(self.cards).get(stream, ApiKey)
        found = stored if stored is not None and stored.revoked_at is None else None
        if self.cache_seconds > 0:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[stream] = (self.clock() + self.cache_seconds, found)
        return self._unexpired(found)

    def _unexpired(self, found: ApiKey | None) -> ApiKey | None:
        return found if found is not None and found.live(self.cards.now()) else None

    def cached(self, key: str) -> tuple[bool, ApiKey | None]:
        """(True, the answer) when `authenticate` can answer without the store: a malformed
        key, or one read less than `cache_seconds` ago. No I/O: callable from an event loop."""
        if not well_formed(key):
            return True, None
        known, found = self._reused(ApiKey.id_for(key_hash(key)))
        return known, self._unexpired(found)

    def _reused(self, stream: UUID) -> tuple[bool, ApiKey | None]:
        hit = self._cache.get(stream) if self.cache_seconds > 0 else None
        if hit is not None and hit[0] > self.clock():
            return True, hit[1]
        return False, None

    def revoke(self, key_id: UUID) -> Json:
        return self.cards.run(lambda uow: self.revoke_in(uow, key_id))

    def revoke_in(self, uow: UnitOfWork, key_id: UUID) -> Json:
        """Revokes the key in the caller's unit of work (a retry revokes nothing twice)."""
        index = uow.get(stream_id(KEY_BY_ID, str(key_id)), Index)
        api_key = None if index is None else uow.get(index.target, ApiKey)
        if api_key is None:
            raise refuse("unknown_api_key", "no API key has this id")
        if api_key.revoke(at=self.cards.now()):
            uow.add(api_key)
        self._cache.pop(api_key.id, None)
        return key_json(api_key)

    def list(self) -> Json:
        topic = get_topic(ApiKey.Created)
        keys = []
        start = 1
        while page := self.cards.recorder.select_notifications(start, 1000, topics=[topic]):
            for notification in page:
                found = UnitOfWork(self.cards).get(UUID(str(notification.originator_id)), ApiKey)
                if found is not None:
                    keys.append(key_json(found))
            start = page[-1].id + 1
        return {"api_keys": keys}


def key_json(api_key: ApiKey) -> Json:
    return {
        "key_id": str(api_key.key_id),
        "name": api_key.name,
        "scopes": list(api_key.scopes),
        "created_at": iso(api_key.created_at),
        "revoked_at": None if api_key.revoked_at is None else iso(api_key.revoked_at),
        **({"operator": api_key.operator} if api_key.operator else {}),
        **({"expires_at": iso(api_key.expires_at)} if api_key.expires_at else {}),
    }
