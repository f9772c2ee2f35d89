#!/usr/bin/env python3
"""Verify a gift card evidence pack offline: Python 3.11+ and `cryptography`, nothing else.

    python3 verify_pack.py PACK_DIR --trusted-keys trusted-keys.json

Checks, with keys from YOUR key ring only (the pack's public-key.pem is never trusted):
manifest.sig over manifest.json; every file's SHA-256; each checkpoint's signature over its
header and its market's Merkle root over the shipped heads (no card left out); every card's
hash chain (with ids as pseudonyms, the redacted chain the checkpoints sign); each chain
against the checkpoints' heads; liability and breakage recomputed from the events.
Formats: docs/evidence-formats.md. Exit 0 and "ok" only if everything holds.
"""

import base64
import hashlib
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

Ring = dict[str, tuple[Ed25519PublicKey, datetime | None, datetime | None]]
Cards = dict[str, list[dict[str, Any]]]
NOT_HASHED = {"prev_hash", "event_hash", "chain_mac", "class_version"}


def canonical(value: Any) -> bytes:
    """The bytes hashed and signed: JSON, keys sorted, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_ring(path: Path) -> Ring:
    """{fingerprint: (key, valid_from, valid_until)} from a JSON ring or PEM public keys."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        entries = [(e["public_key"].encode(), e.get("valid_from"), e.get("valid_until"))
                   for e in json.loads(data)["keys"]]
    else:
        entries = [(b"-----BEGIN PUBLIC KEY-----" + p, None, None)
                   for p in data.split(b"-----BEGIN PUBLIC KEY-----")[1:]]
    ring: Ring = {}
    for pem, start, end in entries:
        key = serialization.load_pem_public_key(pem)
        assert isinstance(key, Ed25519PublicKey), "not an Ed25519 key"
        ring[fingerprint(key)] = (key, instant(start) if start else None,
                                  instant(end) if end else None)
    return ring


def verify_signature(ring: Ring, name: str | None, signed_at: str, signature: str,
                     data: bytes) -> str | None:
    """Signed by the named key of the ring, within its validity period."""
    if name is None or name not in ring:
        return f"key {name} is not in the trusted key ring"
    key, start, end = ring[name]
    when = instant(signed_at)
    if (start and when < start) or (end and when > end):
        return f"key {name} was not valid at {signed_at}"
    try:
        key.verify(base64.b64decode(signature), data)
    except Exception:
        return "signature invalid"
    return None


def link(prev: str | None, topic: str, fields: dict[str, Any]) -> str:
    """sha256("giftcards-chain-v1\\n" + prev + "\\n" + topic + "\\n" + canonical fields)."""
    digest = hashlib.sha256(b"giftcards-chain-v1\n")
    digest.update((prev or "").encode() + b"\n" + topic.encode() + b"\n")
    digest.update(canonical({k: v for k, v in fields.items() if k not in NOT_HASHED}))
    return digest.hexdigest()


def redacted_link(prev: str | None, topic: str, fields: dict[str, Any]) -> str:
    """The same over the fields as shipped (ids as pseudonyms), tag "giftcards-redacted-v1"."""
    digest = hashlib.sha256(b"giftcards-redacted-v1\n")
    digest.update((prev or "").encode() + b"\n" + topic.encode() + b"\n")
    digest.update(canonical({k: v for k, v in fields.items() if k not in NOT_HASHED}))
    return digest.hexdigest()


def merkle_root(heads: dict[str, Any]) -> str:
    """Leaves sha256("card:version:head[:redacted head]") sorted by card id; pairs hashed; odd
    one promoted."""
    level = [hashlib.sha256(":".join([c, str(h[0]), h[1], *h[3:4]]).encode()).digest()
             for c, h in sorted(heads.items())]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        pairs = [hashlib.sha256(level[i] + level[i + 1]).digest()
                 for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def kind(topic: str) -> str:
    return topic.rsplit(".", 1)[-1]


def liability(cards: Cards, as_of: datetime, market: str) -> list[dict[str, Any]]:
    totals: dict[str, list[int]] = {}
    for history in cards.values():
        first = history[0]["fields"]
        if kind(history[0]["topic"]) != "Purchased" or instant(first["at"]) > as_of:
            continue
        row = totals.setdefault(first["currency"], [0, 0])
        closed = instant(first["expires_at"]) <= as_of or any(
            kind(e["topic"]) in ("Redeemed", "Cancelled", "Expired")
            and instant(e["fields"]["at"]) <= as_of for e in history)
        if not closed:
            row[0], row[1] = row[0] + first["amount"], row[1] + 1
    return [{"market": market, "currency": c, "outstanding": o, "open_cards": n}
            for c, (o, n) in sorted(totals.items())]


def breakage(cards: Cards, market: str, period: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    totals: dict[str, list[int]] = {}
    for history in cards.values():
        for e in history:
            f = e["fields"]
            if kind(e["topic"]) not in ("Redeemed", "Expired") or not f.get("forfeited"):
                continue
            if instant(f["at"]).astimezone(zone).strftime("%Y-%m") != period:
                continue
            row = totals.setdefault(f["currency"], [0, 0])
            row[0 if kind(e["topic"]) == "Redeemed" else 1] += f["forfeited"]
    return [{"market": market, "currency": c, "month": period, "after_use": a, "expired": x,
             "total": a + x} for c, (a, x) in sorted(totals.items())]


def verify(pack: Path, ring: Ring) -> list[str]:
    problems: list[str] = []
    signed = (pack / "manifest.json").read_bytes()
    manifest = json.loads(signed)
    market, period = manifest["market"], manifest["period"]
    why = verify_signature(ring, manifest["key"], manifest["signed_at"],
                           (pack / "manifest.sig").read_text().strip(), signed)
    if why:
        problems.append(f"manifest: {why}")
    for name, digest in manifest["files"].items():
        if hashlib.sha256((pack / name).read_bytes()).hexdigest() != digest:
            problems.append(f"{name} differs from the manifest")
    cards: Cards = {}
    for raw in (pack / "chains.jsonl").read_bytes().splitlines():
        line = json.loads(raw)
        cards.setdefault(line["card_id"], []).append(line)
    # Ids as pseudonyms: the fields give each card's redacted chain (signed in the checkpoints'
    # heads); the event hashes (over the clear ids) come as shipped and must link up.
    pseudonyms = manifest.get("ids") == "pseudonyms"
    heads: dict[tuple[str, int], str] = {}
    redacted: dict[tuple[str, int], str] = {}
    for cid, history in cards.items():
        prev = prev_r = None
        for n, e in enumerate(history, 1):
            f = {**e["fields"], "originator_id": cid, "originator_version": e["version"]}
            computed = str(f.get("event_hash")) if pseudonyms else link(prev, e["topic"], f)
            if e["version"] != n or f.get("prev_hash", prev) != prev or \
                    f.get("event_hash", computed) != computed:
                problems.append(f"card {cid} version {e['version']}: chain broken")
            heads[cid, e["version"]] = prev = f.get("event_hash") or computed
            if pseudonyms:
                redacted[cid, e["version"]] = prev_r = redacted_link(prev_r, e["topic"], f)
    trusted = 0
    for cp in json.loads((pack / "checkpoints.json").read_bytes()):
        header = cp["header"]
        why = verify_signature(ring, header.get("key"), header["signed_at"], cp["signature"],
                               canonical(header))
        mine = {c: h for c, h in cp["heads"].items()}
        signed_root = header.get("markets", {}).get(market, {"cards": 0, "root": merkle_root({})})
        if why or {"cards": len(mine), "root": merkle_root(mine)} != signed_root:
            problems.append(f"checkpoint {header['position']}: {why or 'market root differs'}")
            continue
        trusted += 1
        for cid, (version, head, *rest) in mine.items():
            if heads.get((cid, version)) != head or (
                    pseudonyms and len(rest) > 1 and redacted.get((cid, version)) != rest[1]):
                problems.append(f"card {cid} differs from checkpoint {header['position']} "
                                "(edited, deleted or left out)")
    if not trusted:
        problems.append("no checkpoint signed by a trusted key")
    zone = ZoneInfo(manifest.get("time_zone", "UTC"))
    first = datetime.strptime(period, "%Y-%m").replace(tzinfo=zone)
    following = (first + timedelta(days=32)).replace(day=1)
    shown = json.loads((pack / "liability.json").read_bytes())
    for when, bound in (("start", first), ("end", following)):
        if shown[when]["markets"] != liability(cards, bound - timedelta(microseconds=1), market):
            problems.append(f"liability at the period's {when} differs from the events")
    if json.loads((pack / "breakage.json").read_bytes())["rows"] != breakage(
            cards, market, period, zone):
        problems.append("breakage differs from the events")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "--trusted-keys":
        print("usage: python3 verify_pack.py PACK_DIR --trusted-keys FILE", file=sys.stderr)
        return 2
    pack, ring_path = Path(argv[0]).resolve(), Path(argv[2]).resolve()
    if pack in ring_path.parents:
        print("refused: the trusted key ring must come from outside the pack", file=sys.stderr)
        return 1
    problems = verify(pack, load_ring(ring_path))
    print("\n".join(problems) or "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
