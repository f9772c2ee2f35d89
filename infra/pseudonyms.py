"""Keyed pseudonyms of customer, subject and order ids for what leaves the service (P5, R21)."""

from __future__ import annotations

import hmac
from functools import lru_cache
from uuid import UUID

# What a pseudonym looks like on the stream (the published schemas' patterns): a kind prefix,
# then 128 bits of HMAC-SHA256 in hex (no collision in any realistic store; hex, not base32:
# Python's base32 encoder cost three times the HMAC on the relay's path).
SUBJECT_PREFIX, ORDER_PREFIX, MESSAGE_PREFIX = "cus_", "ord_", "msg_"
SUBJECT_PATTERN = "^cus_[0-9a-f]{32}$"
ORDER_PATTERN = "^ord_[0-9a-f]{32}$"
MESSAGE_PATTERN = "^msg_[0-9a-f]{32}$"
CACHED = 65_536  # ids per kind kept computed (a few MB at most)


class StreamPseudonyms:
    """Deterministic under one key that analytics does not hold: equal ids stay equal (the fraud
    rules and the objection matching need only that), and no one without the key can compute or
    confirm the pseudonym of a known id (an unkeyed hash or uuid5 could be checked by anyone)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        # The relay's hot path: a card's order id and its customers recur event after event.
        self.subject = lru_cache(maxsize=CACHED)(self.subject)  # type: ignore[method-assign]
        self.order = lru_cache(maxsize=CACHED)(self.order)  # type: ignore[method-assign]
        self.stream = lru_cache(maxsize=CACHED)(self.stream)  # type: ignore[method-assign]

    def subject(self, subject_id: str) -> str:
        """A data subject: a customer id or a recipient's subject id (one namespace)."""
        return SUBJECT_PREFIX + self._digest(b"subject", subject_id.encode())

    def unlinked(self, event_id: str, field: str) -> str:
        """A one-off pseudonym for one field of one event (a restricted or objecting subject's
        new events): shaped like any other, equal to none of theirs nor to each other."""
        return SUBJECT_PREFIX + self._digest(b"unlinked", f"{event_id}\x00{field}".encode())

    def order(self, order_id: str) -> str:
        return ORDER_PREFIX + self._digest(b"order", order_id.encode())

    def message(self, message_id: str) -> str:
        """An order service message id, as a dead letter names the message it refused."""
        return MESSAGE_PREFIX + self._digest(b"message", message_id.encode())

    def stream(self, stream_id: UUID) -> UUID:
        """A stream named after a customer (attempts, data subject) is a uuid5 anyone can
        compute from the id: published under a keyed UUID instead (version 8, RFC 9562)."""
        raw = bytearray(self._mac(b"stream", stream_id.bytes)[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80
        raw[8] = (raw[8] & 0x3F) | 0x80
        return UUID(bytes=bytes(raw))

    def _digest(self, kind: bytes, value: bytes) -> str:
        return self._mac(kind, value)[:16].hex()

    def _mac(self, kind: bytes, value: bytes) -> bytes:
        # The kind is bound in: an order id never shares a pseudonym with an equal customer id.
        return hmac.digest(self._key, kind + b"\x00" + value, "sha256")  # OpenSSL's one-shot
