"""Stored HTTP replies of the Idempotency-Key header: the same status and body on a repeat."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.stored_names import stored_as
from domain.streams import stream_id

MAX_KEY = 200


@stored_as("entrypoints.http.replies:HttpReply")
class HttpReply(Aggregate):
    """The answer given to one client's Idempotency-Key, with the request it answered."""

    class Recorded(Aggregate.Created):  # stored topic `entrypoints.http.replies:HttpReply.Recorded`
        fingerprint: str
        status: int
        body: dict[str, Any]

    @event(Recorded)
    def __init__(self, *, fingerprint: str, status: int, body: dict[str, Any]) -> None:
        self.fingerprint = fingerprint
        self.status = status
        self.body = body

    @staticmethod
    def id_for(key_id: UUID, idempotency_key: str) -> UUID:
        """Per API key: two clients' keys never collide."""
        return stream_id("http-reply", f"{key_id}|{idempotency_key}")

    @classmethod
    def record(cls, stream: UUID, fingerprint: str, status: int, body: dict[str, Any]) -> HttpReply:
        return cls._create(
            cls.Recorded, id=stream, fingerprint=fingerprint, status=status, body=body
        )


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    parts = [method.encode(), path.encode(), query.encode(), body]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def without_codes(body: dict[str, Any]) -> dict[str, Any]:
    """A code is shown once: what is stored (and replayed) has `code` blanked, like the
    natural-key replay of a purchase."""
    out = dict(body)
    if "code" in out:
        out["code"] = None
    if isinstance(out.get("new_card"), dict):
        out["new_card"] = {**out["new_card"], "code": None}
    return out
