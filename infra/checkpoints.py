"""Signed checkpoints of every card chain head (Ed25519), kept outside the database."""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from infra.chains import CardChain, all_chains, card_chain, merkle_root
from infra.config import private_directory

Problem = dict[str, Any]


class CheckpointError(Exception):
    """The store cannot be signed as it is (its chains are broken): `problems` says where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} chain problem(s): not signed")
        self.problems = problems


def load_signing_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """The PEM private key at `path`; created (mode 0600) with a warning when `create`."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no checkpoint signing key at {path}")
        private_directory(path.parent)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        print(f"warning: generated a checkpoint signing key in {path}", file=sys.stderr)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


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


def _signed_bytes(header: dict[str, Any]) -> bytes:
    return orjson.dumps(header, option=orjson.OPT_SORT_KEYS)


class Checkpointer:
    """Keeps every card chain recomputed up to a store position, reading only the events
    stored since the last call: `serve` signs a checkpoint every N events or minutes."""

    def __init__(self, recorder: Any, mapper: Any) -> None:
        self.recorder, self.mapper = recorder, mapper
        self.chains: dict[str, CardChain] = {}
        self.position = 0

    def catch_up(self) -> int:
        """Feeds the events stored since the last call; returns how many were read."""
        upto = self.recorder.max_notification_id() or 0
        before = self.position
        for _ in all_chains(self.recorder, self.mapper, upto, start=self.position + 1,
                            chains=self.chains):
            pass
        self.position = max(self.position, upto)
        return self.position - before

    def sign(self, key: Ed25519PrivateKey, now: datetime, directory: Path) -> dict[str, Any]:
        self.catch_up()
        problems = [p for c in self.chains.values() for p in c.problems]
        if problems:
            raise CheckpointError(problems)
        heads = {cid: (c.last_version, c.hashes[c.last_version])
                 for cid, c in self.chains.items()}
        header = {"position": self.position, "signed_at": now.isoformat(), "cards": len(heads),
                  "root": merkle_root(heads)}
        checkpoint = {
            "header": header,
            "signature": base64.b64encode(key.sign(_signed_bytes(header))).decode(),
            "heads": {cid: list(vh) for cid, vh in sorted(heads.items())},
        }
        write(directory, checkpoint, public_pem(key))
        return checkpoint


def create(recorder: Any, mapper: Any, key: Ed25519PrivateKey, now: datetime,
           directory: Path) -> dict[str, Any]:
    """Recompute every chain up to the store's last position and, if none is broken, sign the
    Merkle root of their heads; written as `checkpoint-<position>.json` in `directory`.
    Returns the checkpoint (header, signature, heads)."""
    return Checkpointer(recorder, mapper).sign(key, now, directory)


def write(directory: Path, checkpoint: dict[str, Any], public: bytes) -> Path:
    private_directory(directory)
    path = directory / f"checkpoint-{checkpoint['header']['position']:012d}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(checkpoint))
    tmp.replace(path)
    (directory / "public-key.pem").write_bytes(public)
    return path


def check(checkpoint: dict[str, Any], key: Ed25519PublicKey) -> str | None:
    """Why a checkpoint cannot be trusted (bad signature, heads not its root), or None."""
    try:
        key.verify(base64.b64decode(checkpoint["signature"]), _signed_bytes(checkpoint["header"]))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return "signature invalid: not signed by the trusted checkpoint key"
    heads = {cid: (int(v), str(h)) for cid, (v, h) in checkpoint["heads"].items()}
    if merkle_root(heads) != checkpoint["header"]["root"]:
        return "heads do not give the signed Merkle root"
    return None


def paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("checkpoint-*.json")) if directory.is_dir() else []


@lru_cache(maxsize=8)
def _read(path: Path, mtime_ns: int) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    return loaded


def read(path: Path) -> dict[str, Any]:
    """A checkpoint file, parsed once per process while unchanged."""
    return _read(path, path.stat().st_mtime_ns)


def trusted(directory: Path, key: Ed25519PublicKey) -> tuple[list[dict[str, Any]], list[Problem]]:
    """(checkpoints that verify, oldest first; one problem per checkpoint that does not)."""
    good, bad = [], []
    for path in paths(directory):
        try:
            checkpoint = read(path)
            why = check(checkpoint, key)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            why = "unreadable checkpoint file"
        if why is None:
            good.append(checkpoint)
        else:
            bad.append({"card_id": None, "version": None, "problem": f"{path.name}: {why}"})
    return good, bad


def compare(card_id: str, hashes: dict[int, str], last_version: int,
            checkpoints: list[dict[str, Any]]) -> Iterator[Problem]:
    """Differences between one card's recomputed chain and every trusted checkpoint."""
    for cp in checkpoints:
        head = cp["heads"].get(card_id)
        if head is None:
            continue
        version, expected = int(head[0]), head[1]
        at = f"checkpoint at position {cp['header']['position']} ({cp['header']['signed_at']})"
        if version > last_version:
            yield {"card_id": card_id, "version": version,
                   "problem": f"{at} has version {version}; the store has only "
                              f"{last_version}: events were deleted"}
        elif hashes.get(version) != expected:
            yield {"card_id": card_id, "version": version,
                   "problem": f"history up to version {version} differs from the {at}: "
                              "an event was edited, inserted, removed or reordered"}


def not_checkpointed(card_id: str, last_version: int, checkpoints: list[dict[str, Any]]) -> int:
    """Events of a card after the latest checkpoint."""
    if not checkpoints:
        return last_version
    head = checkpoints[-1]["heads"].get(card_id)
    return last_version - (int(head[0]) if head else 0)




def every(checkpointer: Checkpointer, sign: Any, events: int, seconds: float,
          stop: Any, poll: float = 5.0) -> None:
    """Calls `sign()` whenever `events` new events were stored, or `seconds` passed with at
    least one, until `stop` is set (a `threading.Event`)."""
    import time

    since, last = 0, time.monotonic()
    while not stop.is_set():
        since += checkpointer.catch_up()
        if since and (since >= events or time.monotonic() - last >= seconds):
            sign()
            since, last = 0, time.monotonic()
        stop.wait(poll)


__all__ = ["CheckpointError", "Checkpointer", "card_chain", "check", "compare", "create",
           "every", "trusted"]
