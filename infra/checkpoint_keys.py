"""Checkpoint signing keys (Ed25519): loaded or created private, named by fingerprint, and the
ring of trusted keys with the period each signed in."""

from __future__ import annotations

import base64
import hashlib
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from infra.private_files import create_private_file


def load_signing_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """The PEM private key at `path`; created (mode 0600) with a warning when `create`."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no checkpoint signing key at {path}")
        # Processes starting together share the first key linked into place.
        if create_private_file(path, private_pem(Ed25519PrivateKey.generate())):
            print(f"warning: generated a checkpoint signing key in {path}", file=sys.stderr)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def ring_path(directory: Path) -> Path:
    """The service's trusted key ring, beside the checkpoints it verifies."""
    return directory / "trusted-keys.json"


def trusted_signing_key(key_file: Path, directory: Path, *, create: bool) -> Ed25519PrivateKey:
    """The signing key, which must be in the key ring (started with the first key): a key
    swapped in by hand signs nothing; keys change with `audit rotate-key`."""
    key = load_signing_key(key_file, create=create)
    path = ring_path(directory)
    started = create_private_file(path, KeyRing.of(key.public_key()).dump())
    if not started and fingerprint(key) not in KeyRing.load(path.read_bytes()).keys:
        raise ValueError(f"key {fingerprint(key)} is not in the trusted key ring {path}; "
                         "change keys with `audit rotate-key`")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """A new PEM file (mode 0600, in a 0700 directory), written at once; never overwrites one."""
    if not create_private_file(path, private_pem(key)):
        raise FileExistsError(f"{path} exists: a signing key is never overwritten")


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: how checkpoints, packs and key rings name
    a key (`openssl pkey -pubin -outform DER | tail -c 32 | sha256sum` gives the same)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode()


class KeyRing:
    """Trusted checkpoint keys: each with the period it signed in (a retired key stays, so
    history signed with it stays verifiable). A JSON file `{"keys": [{"fingerprint",
    "public_key" (PEM), "valid_from", "valid_until" (ISO instants or null)}]}`, or PEM public
    keys (valid at any time)."""

    def __init__(self, keys: list[tuple[Ed25519PublicKey, datetime | None, datetime | None]]):
        self.keys = {fingerprint(k): (k, start, end) for k, start, end in keys}

    @classmethod
    def of(cls, *keys: Ed25519PublicKey) -> KeyRing:
        return cls([(k, None, None) for k in keys])

    @classmethod
    def load(cls, data: bytes) -> KeyRing:
        if data.lstrip().startswith(b"{"):
            entries = orjson.loads(data)["keys"]
            ring = cls([(load_public_key(e["public_key"].encode()), _when(e.get("valid_from")),
                         _when(e.get("valid_until"))) for e in entries])
            for e in entries:
                if e.get("fingerprint") and e["fingerprint"] not in ring.keys:
                    raise ValueError(f"key ring entry {e['fingerprint'][:16]}…: its public key "
                                     "has another fingerprint")
            return ring
        pems = [b"-----BEGIN PUBLIC KEY-----" + part for part in
                data.split(b"-----BEGIN PUBLIC KEY-----")[1:]]
        if not pems:
            raise ValueError("neither a JSON key ring nor PEM public keys")
        return cls.of(*(load_public_key(p) for p in pems))

    def dump(self) -> bytes:
        return orjson.dumps({"keys": [
            {"fingerprint": fp, "public_key": public_pem(k).decode(),
             "valid_from": start.isoformat() if start else None,
             "valid_until": end.isoformat() if end else None}
            for fp, (k, start, end) in self.keys.items()
        ]}, option=orjson.OPT_INDENT_2)

    def key_for(self, header: dict[str, Any]) -> Ed25519PublicKey | None:
        """The key that signed `header` if trusted at its signing time. Checkpoints from before
        keys were named: the only key of the ring valid then, if there is exactly one."""
        signed_at = _when(header.get("signed_at"))
        named = header.get("key")
        candidates = [self.keys[named]] if named in self.keys else [] if named else list(
            self.keys.values())
        valid = [k for k, start, end in candidates
                 if signed_at is None or ((start is None or start <= signed_at)
                                          and (end is None or signed_at <= end))]
        return valid[0] if len(valid) == 1 else None

    def add(self, key: Ed25519PublicKey, start: datetime | None) -> None:
        self.keys.setdefault(fingerprint(key), (key, start, None))

    def retire(self, key: Ed25519PublicKey, end: datetime) -> None:
        fp = fingerprint(key)
        k, start, _ = self.keys[fp]
        self.keys[fp] = (k, start, end)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def service_ring(directory: Path, signing_key_file: Path) -> KeyRing | None:
    """The service's own trust: its ring file, else the public half of its signing key;
    None if it has neither (ValueError: a file that is not a key)."""
    if ring_path(directory).exists():
        return KeyRing.load(ring_path(directory).read_bytes())
    if signing_key_file.exists():
        return KeyRing.of(load_signing_key(signing_key_file, create=False).public_key())
    return None
