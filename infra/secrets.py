"""The master secret and the keys derived from it (code HMACs, subject ids, key wrapping,
stream pseudonyms)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive(master: bytes, purpose: str) -> bytes:
    """Independent 256-bit keys per purpose: leaking one use never helps another."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master
    )


@dataclass(frozen=True)
class Keys:
    code_hmac: bytes
    subject_hmac: bytes
    key_wrapping: bytes
    stream_pseudonym: bytes  # P5: pseudonyms on giftcard.events, a key analytics never holds

    @classmethod
    def from_master(cls, master: bytes) -> Keys:
        return cls(
            code_hmac=derive(master, "giftcards/code-hmac/v1"),
            subject_hmac=derive(master, "giftcards/subject-id/v1"),
            key_wrapping=derive(master, "giftcards/key-wrapping/v1"),
            stream_pseudonym=derive(master, "giftcards/stream-pseudonym/v1"),
        )


class HmacCodeHasher:
    """Codes are stored only as HMAC-SHA256 under a key that never leaves the service."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def lookup_key(self, code: str) -> str:
        return hmac.new(self._key, code.encode(), hashlib.sha256).hexdigest()
