"""API keys of the HTTP API: a name, scopes, revocation; only the key's hash is ever stored."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.errors import refuse
from domain.stored_names import stored_as
from domain.streams import stream_id

SCOPES = ("checkout", "orders", "support", "audit")


@stored_as("domain.apikeys:ApiKey")
class ApiKey(Aggregate):
    """A client of the HTTP API. Its id names it in logs, attempts and replies (never the key);
    its stream is keyed by the key's hash, so authenticating is one read."""

    class Created(Aggregate.Created):  # stored topic `domain.apikeys:ApiKey.Created`
        key_id: UUID
        name: str
        scopes: list[str]
        at: datetime
        # An operator's key (R21) names them and expires; a service's key has neither.
        operator: str | None = None
        expires_at: datetime | None = None

    class Revoked(Aggregate.Event):
        at: datetime

    @event(Created)
    def __init__(
        self, *, key_id: UUID, name: str, scopes: list[str], at: datetime,
        operator: str | None = None, expires_at: datetime | None = None,
    ) -> None:
        self.key_id = key_id
        self.name = name
        self.scopes = scopes
        self.created_at = at
        self.operator = operator
        self.expires_at = expires_at
        self.revoked_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        """Neither revoked nor past its expiry."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    @staticmethod
    def id_for(key_hash: str) -> UUID:
        return stream_id("api-key", key_hash)

    @staticmethod
    def check_scopes(scopes: list[str]) -> None:
        unknown = sorted(set(scopes) - set(SCOPES))
        if not scopes or unknown:
            raise refuse("invalid_input", f"scopes must be among {', '.join(SCOPES)}")

    @classmethod
    def create(
        cls, *, key_hash: str, key_id: UUID, name: str, scopes: list[str], at: datetime,
        operator: str | None = None, expires_at: datetime | None = None,
    ) -> ApiKey:
        cls.check_scopes(scopes)
        if not name or len(name) > 100 or not name.isprintable():
            raise refuse("invalid_input", "name must be 1 to 100 printable characters")
        return cls._create(
            cls.Created, id=cls.id_for(key_hash), key_id=key_id, name=name,
            scopes=sorted(set(scopes)), at=at, operator=operator, expires_at=expires_at,
        )

    def revoke(self, *, at: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        self._revoked(at=at)
        return True

    @event(Revoked)
    def _revoked(self, *, at: datetime) -> None:
        self.revoked_at = at
