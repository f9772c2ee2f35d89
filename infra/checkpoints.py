"""Signed checkpoints of every card chain head (Ed25519), kept outside the database: each names
its key's fingerprint and commits, market by market, to the set of that market's cards."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from infra.chains import CardChain, all_chains, card_chain, merkle_root, merkle_roots
from infra.checkpoint_compare import compare, covering, is_increment, not_checkpointed
from infra.checkpoint_keys import (
    KeyRing,
    fingerprint,
    load_public_key,
    load_signing_key,
    private_pem,
    public_pem,
    ring_path,
    service_ring,
    sign_bytes,
    trusted_signing_key,
    write_private_key,
)
from infra.private_files import private_directory

Problem = dict[str, Any]


class CheckpointError(Exception):
    """The store cannot be signed as it is (a chain is broken, or it contradicts the latest
    trusted checkpoint): `problems` says where and what differs."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} chain problem(s): not signed")
        self.problems = problems


def _signed_bytes(header: dict[str, Any]) -> bytes:
    return orjson.dumps(header, option=orjson.OPT_SORT_KEYS)


def market_roots(heads: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per market: how many cards and the Merkle root of their heads (sorted by card id)."""
    return merkle_roots(heads)[1]


class Checkpointer:
    """Keeps every card chain recomputed up to a store position, reading only the events
    stored since the last call: `serve` signs a checkpoint every N events or minutes."""

    def __init__(self, recorder: Any, mapper: Any) -> None:
        self.recorder, self.mapper = recorder, mapper
        self.chains: dict[str, CardChain] = {}
        self.position = 0
        self.last: dict[str, Any] | None = None
        self.changed: set[str] = set()  # cards whose head moved since the last signature
        self.increments: list[dict[str, Any]] = []  # signed since `last` (a full one)
        self.checked_all = False  # every card checked against the signed heads once

    def catch_up(self) -> int:
        """Feeds the events stored since the last call; returns how many were read."""
        upto = self.recorder.max_notification_id() or 0
        before = self.position
        for _, chain in all_chains(self.recorder, self.mapper, upto, start=self.position + 1,
                                   chains=self.chains):
            self.changed.add(chain.card_id)
        self.position = max(self.position, upto)
        return self.position - before

    def follow(self, chain: list[dict[str, Any]]) -> None:
        """Go on from trusted checkpoints (a full one, then its increments, oldest first)."""
        fulls = [cp for cp in chain if not is_increment(cp)]
        self.last = fulls[-1] if fulls else None
        start = chain.index(self.last) + 1 if self.last is not None else 0
        self.increments = [cp for cp in chain[start:] if is_increment(cp)]

    def signed_heads(self) -> dict[str, Any]:
        """Every card's head as last signed: the full checkpoint's, moved on by increments."""
        heads: dict[str, Any] = dict(self.last["heads"]) if self.last else {}
        for cp in self.increments:
            heads.update(cp["heads"])
        return heads

    def signed_head(self, card_id: str) -> Any:
        """One card's head as last signed (None: never signed)."""
        for cp in reversed(self.increments):
            if card_id in cp["heads"]:
                return cp["heads"][card_id]
        return self.last["heads"].get(card_id) if self.last else None

    def previous(self) -> str | None:
        latest = self.increments[-1] if self.increments else self.last
        return header_digest(latest["header"]) if latest else None

    def rejoin(self, key: Ed25519PrivateKey, directory: Path) -> bool:
        """Go on from the directory's latest trusted checkpoint when another instance signed
        since this one did (a lease taken over): the chain is the directory's, not this
        process's. The next increment then checks every card against it. True if it moved."""
        latest = self.increments[-1] if self.increments else self.last
        mine = int(latest["header"]["position"]) if latest else -1
        if newest_position(directory) <= mine:
            return False
        ring = (KeyRing.load(ring_path(directory).read_bytes()) if ring_path(directory).exists()
                else KeyRing.of(key.public_key()))
        good, _ = trusted(directory, ring)
        self.follow(good)
        self.checked_all = False
        return True

    def sign_increment(self, key: Ed25519PrivateKey, now: datetime,
                       directory: Path) -> dict[str, Any] | None:
        """Signs the heads of the cards that changed since the previous signature (None if
        none did), chained to it: `increment-<position>.json`. Checked like a full one, but
        over the changed cards only (the first time, over every card)."""
        self.rejoin(key, directory)
        self.catch_up()
        if not self.changed:
            return None
        # The first time every card (the store may have changed while no one watched), then
        # only the cards read since: what was checked once stays as it was read.
        names = self.changed if self.checked_all else set(self.chains)
        signed = self.signed_heads() if not self.checked_all else {
            cid: h for cid in names if (h := self.signed_head(cid)) is not None}
        problems = [p for cid in names for p in self.chains[cid].all_problems()]
        problems.extend(contradictions(self.chains, self.signed_state(signed)))
        if problems:
            raise CheckpointError(problems)
        self.checked_all = True
        heads: dict[str, Any] = {
            cid: self.chains[cid].head_of() for cid in sorted(self.changed)}
        header = {"kind": "increment", "position": self.position,
                  "signed_at": now.isoformat(), "cards": len(heads),
                  "root": merkle_root(heads),
                  "key": fingerprint(key), "previous": self.previous()}
        increment = {"header": header, "signature": sign_bytes(key, _signed_bytes(header)),
                     "heads": heads}
        write(directory, increment, public_pem(key))
        self.increments.append(increment)
        self.changed.clear()
        return increment

    def signed_state(self, heads: dict[str, Any]) -> dict[str, Any]:
        """`heads` under the header of the latest signature (what contradictions name)."""
        latest = self.increments[-1] if self.increments else self.last
        header = latest["header"] if latest else {"position": 0, "signed_at": None}
        return {"header": header, "heads": heads}

    def sign(self, key: Ed25519PrivateKey, now: datetime, directory: Path,
             latest: dict[str, Any] | None = None) -> dict[str, Any]:
        """Signs the heads unless a chain is broken or the store contradicts `latest` (the
        latest trusted checkpoint; by default the last one this checkpointer signed): an
        event deleted, a history changed, a card missing."""
        self.rejoin(key, directory)
        self.catch_up()
        problems = [p for c in self.chains.values() for p in c.all_problems()]
        if latest is None and (self.last is not None or self.increments):
            latest = self.signed_state(self.signed_heads())
        if latest is not None:
            problems.extend(contradictions(self.chains, latest))
        if problems:
            raise CheckpointError(problems)
        heads: dict[str, Any] = {cid: c.head_of() for cid, c in sorted(self.chains.items())}
        root, markets = merkle_roots(heads)
        header = {"position": self.position, "signed_at": now.isoformat(), "cards": len(heads),
                  "root": root, "key": fingerprint(key), "markets": markets}
        if self.last is not None or self.increments:
            header["previous"] = self.previous()
        checkpoint = {
            "header": header,
            "signature": sign_bytes(key, _signed_bytes(header)),
            "heads": heads,
        }
        write(directory, checkpoint, public_pem(key))
        self.last, self.increments = checkpoint, []
        self.changed.clear()
        self.checked_all = True
        prune_increments(directory, self.position)
        return checkpoint


def contradictions(chains: dict[str, CardChain], latest: dict[str, Any]) -> list[Problem]:
    """How the store's chains differ from a trusted checkpoint's heads."""
    found: list[Problem] = []
    for cid, head in latest["heads"].items():
        chain = chains.get(cid)
        if chain is None:
            found.append({"card_id": cid, "version": int(head[0]), "problem": "card in the "
                          f"checkpoint at position {latest['header']['position']} is missing "
                          "from the store: its events were deleted"})
        else:
            found.extend(compare(cid, chain.hashes, chain.last_version, [latest],
                                 chain.redacted))
    return found


def create(recorder: Any, mapper: Any, key: Ed25519PrivateKey, now: datetime,
           directory: Path, latest: dict[str, Any] | None = None, *,
           chain: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Recompute every chain up to the store's last position and, if none is broken and the
    store contradicts neither `latest` nor the trusted `chain` (full checkpoints and
    increments, oldest first), sign the Merkle root of their heads, chained to the last of
    `chain`; written as `checkpoint-<position>.json` in `directory`. Returns the checkpoint
    (header, signature, heads)."""
    checkpointer = Checkpointer(recorder, mapper)
    checkpointer.follow(chain or [])
    return checkpointer.sign(key, now, directory, latest)


def header_digest(header: dict[str, Any]) -> str:
    """What the next checkpoint names as `previous`: SHA-256 of the signed header bytes."""
    return hashlib.sha256(_signed_bytes(header)).hexdigest()


def increment_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("increment-*.json")) if directory.is_dir() else []


def newest_position(directory: Path) -> int:
    """The position of the newest checkpoint or increment file (-1: none), from names only."""
    found = [int(p.stem.split("-")[1]) for p in paths(directory) + increment_paths(directory)]
    return max(found, default=-1)


def prune_increments(directory: Path, position: int) -> None:
    """Increments up to a full checkpoint add nothing to it (it holds every head then); their
    copies stay on the checkpoint topic."""
    for path in increment_paths(directory):
        if int(path.stem.split("-")[1]) <= position:
            path.unlink(missing_ok=True)


def write(directory: Path, checkpoint: dict[str, Any], public: bytes) -> Path:
    private_directory(directory)
    kind = "increment" if is_increment(checkpoint) else "checkpoint"
    path = directory / f"{kind}-{checkpoint['header']['position']:012d}.json"
    key = checkpoint["header"].get("key")
    if path.exists() and key and read(path)["header"].get("key") != key:
        # A new key signing the same position (a rotation): the old key's file is history.
        path = path.with_name(f"{path.stem}-{key[:16]}.json")
    # One temporary file per writer: two `serve` instances sharing the directory may sign the
    # same position at once, and a shared name let one rename the other's file away.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_bytes(orjson.dumps(checkpoint))
    tmp.replace(path)
    (directory / "public-key.pem").write_bytes(public)
    return path


def check(checkpoint: dict[str, Any], key: Ed25519PublicKey | KeyRing,
          market: str | None = None) -> str | None:
    """Why a checkpoint cannot be trusted (no trusted key, bad signature, heads not its roots),
    or None. With `market`, `heads` may hold that market's cards only (an evidence pack): they
    must give the market's signed root, so no card of the market can be left out."""
    ring = key if isinstance(key, KeyRing) else KeyRing.of(key)
    header = checkpoint["header"]
    public = ring.key_for(header)
    if public is None:
        return (f"signed by key {header.get('key', '(unnamed)')}, which is not in the trusted "
                "key ring (or not valid at that time)")
    try:
        public.verify(base64.b64decode(checkpoint["signature"]), _signed_bytes(header))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return "signature invalid: not signed by the trusted checkpoint key"
    if market is None:
        root, markets = merkle_roots(checkpoint["heads"])
        if root != header["root"]:
            return "heads do not give the signed Merkle root"
        if is_increment(checkpoint):
            return None
        if "markets" in header and markets != header["markets"]:
            return "heads do not give the signed roots of each market"
        return None
    signed = header.get("markets", {}).get(market, {"cards": 0, "root": merkle_root({})})
    if market_roots(checkpoint["heads"]).get(market, {"cards": 0, "root": merkle_root({})}) \
            != signed:
        return f"heads do not give the signed root of market {market}: a card was left out"
    return None


def paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("checkpoint-*.json")) if directory.is_dir() else []


@lru_cache(maxsize=8)
def _read(path: Path, stamp: tuple[int, int, int]
          ) -> tuple[dict[str, Any], dict[bytes, str | None]]:
    """(the parsed file, its verdicts so far by key ring): a file of 100k cards takes seconds
    to parse and check, so a process (the console, `audit verify --all`) does both once."""
    loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    return loaded, {}


def read(path: Path) -> dict[str, Any]:
    """A checkpoint file, parsed once per process while unchanged."""
    return _read(path, _stamp(path))[0]


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a file is rewritten or replaced (`write` renames a new file in)."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def forget() -> None:
    """Drops the files parsed and checked by this process (what a new process starts with)."""
    _read.cache_clear()


def _checked(path: Path, ring: KeyRing) -> tuple[dict[str, Any], str | None]:
    """A checkpoint file and why it cannot be trusted (None: it can), checked once per
    process and key ring while the file is unchanged."""
    checkpoint, verdicts = _read(path, _stamp(path))
    token = ring.dump()
    if token not in verdicts:
        verdicts[token] = check(checkpoint, ring)
    return checkpoint, verdicts[token]


def trusted(directory: Path, key: Ed25519PublicKey | KeyRing
            ) -> tuple[list[dict[str, Any]], list[Problem]]:
    """(checkpoints that verify, oldest first: every full one, then the increments after the
    latest; one problem per checkpoint that does not, or per increment that does not follow
    the one before it: a checkpoint removed or replaced)."""
    good, bad = _trusted_files(paths(directory), key)
    since = int(good[-1]["header"]["position"]) if good else 0
    later = [p for p in increment_paths(directory) if int(p.stem.split("-")[1]) > since]
    increments, more = _trusted_files(later, key)
    bad += more
    before = good[-1] if good else None
    for cp in increments:
        if cp["header"].get("previous") != (header_digest(before["header"]) if before else None):
            bad.append({"card_id": None, "version": None, "problem": (
                f"increment at position {cp['header']['position']} does not follow the "
                "checkpoint before it: a checkpoint was removed or replaced")})
        before = cp
    return good + increments, bad


def _trusted_files(files: list[Path], key: Ed25519PublicKey | KeyRing
                   ) -> tuple[list[dict[str, Any]], list[Problem]]:
    ring = key if isinstance(key, KeyRing) else KeyRing.of(key)
    good, bad = [], []
    for path in files:
        try:
            checkpoint, why = _checked(path, ring)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            why = "unreadable checkpoint file"
        if why is None:
            good.append(checkpoint)
        else:
            bad.append({"card_id": None, "version": None, "problem": f"{path.name}: {why}"})
    return good, bad


__all__ = [
    "CheckpointError",
    "Checkpointer",
    "Ed25519PrivateKey",
    "KeyRing",
    "card_chain",
    "check",
    "compare",
    "covering",
    "create",
    "fingerprint",
    "is_increment",
    "load_public_key",
    "load_signing_key",
    "not_checkpointed",
    "private_pem",
    "public_pem",
    "ring_path",
    "service_ring",
    "sign_bytes",
    "trusted",
    "trusted_signing_key",
    "write_private_key",
]
