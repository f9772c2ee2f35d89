"""The auditor's evidence pack of one market and month, and its offline verification: trust
comes from the auditor's key ring, never from the key shipped in the pack."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from cryptography.exceptions import InvalidSignature

from infra import checkpoints as cps
from infra.chains import CARD_TOPIC_PREFIX, CardChain, chain_key_of, fields_of, ids_key, redact
from infra.db import Database
from infra.private_files import private_directory
from projections.queries import breakage, liability
from projections.timefmt import TimeZones, month_in, shipped_zones

Problem = dict[str, Any]
FILES = ("chains.jsonl", "events.jsonl", "liability.json", "breakage.json", "checkpoints.json",
         "public-key.pem")
LAST_US = timedelta(microseconds=1)


def month_bounds(period: str, local: ZoneInfo) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of `YYYY-MM` in the market's local
    time zone, as UTC instants: finance closes months locally, and so does the breakage view
    the pack ships (`TimeZones.month_of`)."""
    first = datetime.strptime(period, "%Y-%m")
    following = (first + timedelta(days=32)).replace(day=1)
    return (first.replace(tzinfo=local).astimezone(UTC),
            following.replace(tzinfo=local).astimezone(UTC))


def export(recorder: Any, mapper: Any, views: Database, market: str, period: str,
           checkpoints: list[dict[str, Any]], key: Any, now: datetime,
           out: Path, clear: list[dict[str, Any]] | None = None,
           zones: TimeZones | None = None) -> dict[str, Any]:
    """Writes the pack: the complete stored histories of every card of the market
    (`chains.jsonl`: what the chains, liability and breakage are recomputed from), the period's
    events (`events.jsonl`), liability at its start and end, breakage by cause, the signed
    checkpoints with the market's heads only, the public key (a convenience, never a trust
    root), and `manifest.json` (every file's SHA-256, the key's fingerprint) signed with the
    checkpoint key in `manifest.sig`; `VERIFY.txt` says how to check it all offline. Customer
    and order ids are shipped as keyed pseudonyms (`redact`): the checkpoints sign each card's
    redacted chain, which the pack's fields give back. `clear`, if given, receives the market's
    events' stored fields (whose customers the caller logs). `zones`: the process's markets'
    (default the shipped ones), as the views it ships close months."""
    local = (zones or shipped_zones()).of(market)
    start, end = month_bounds(period, local)
    histories: dict[str, list[dict[str, Any]]] = {}
    chains: dict[str, CardChain] = {}
    ids = ids_key(chain_key_of(mapper) or b"")
    upto = recorder.max_notification_id() or 0
    position = 1
    while position <= upto:
        page = recorder.select_notifications(position, 1000, stop=upto)
        if not page:
            break
        for n in page:
            if not n.topic.startswith(CARD_TOPIC_PREFIX):
                continue
            cid = str(n.originator_id)
            fields = fields_of(mapper, n)
            fields.pop("chain_mac", None)  # checkable only with the chain key: not shipped
            chain = chains.get(cid) or chains.setdefault(cid, CardChain(cid))
            chain.feed(n.originator_version, n.topic, fields)
            # Events from before the chain: their computed links, so the pack's chain is whole.
            version = n.originator_version
            fields.setdefault("prev_hash", chain.hashes.get(version - 1))
            fields.setdefault("event_hash", chain.hashes[version])
            histories.setdefault(cid, []).append(
                {"card_id": cid, "version": version, "position": n.id,
                 "topic": n.topic, "fields": fields}
            )
        position = page[-1].id + 1
    ours = sorted(cid for cid, lines in histories.items()
                  if lines[0]["fields"].get("market") == market)
    private_directory(out)  # every card's history: customer ids
    events = 0
    with (out / "chains.jsonl").open("wb") as written, \
            (out / "events.jsonl").open("wb") as period_:
        for cid in ours:
            for line in histories[cid]:
                if clear is not None:
                    clear.append(line["fields"])
                line = {**line, "fields": redact(line["fields"], ids)}
                written.write(orjson.dumps(line) + b"\n")
                at = line["fields"].get("at")
                if at and start <= _instant(at) < end:
                    period_.write(orjson.dumps(line) + b"\n")
                    events += 1
    (out / "liability.json").write_bytes(orjson.dumps({
        "start": liability(views, start - LAST_US, market),
        "end": liability(views, end - LAST_US, market),
    }, option=orjson.OPT_INDENT_2))
    (out / "breakage.json").write_bytes(
        orjson.dumps(breakage(views, market, period), option=orjson.OPT_INDENT_2)
    )
    shipped = [{**cp, "heads": {cid: h for cid, h in cp["heads"].items()
                                if len(h) > 2 and h[2] == market}} for cp in checkpoints
               if not cps.is_increment(cp)]  # increments hold no market roots
    (out / "checkpoints.json").write_bytes(orjson.dumps(shipped))
    (out / "public-key.pem").write_bytes(cps.public_pem(key))
    (out / "verify_pack.py").write_bytes(VERIFIER.read_bytes())
    manifest = {"market": market, "period": period, "cards": len(ours), "events": events,
                "ids": "pseudonyms",
                "key": cps.fingerprint(key), "signed_at": now.isoformat(),
                "time_zone": str(local),
                "files": {name: _sha256(out / name) for name in (*FILES, "verify_pack.py")}}
    signed = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (out / "manifest.json").write_bytes(signed)
    (out / "manifest.sig").write_text(cps.sign_bytes(key, signed) + "\n")
    (out / "VERIFY.txt").write_text(
        "Verify offline with YOUR copy of the trusted key ring (fingerprints published in the\n"
        "operations docs; the public-key.pem in this pack is no trust root):\n\n"
        f"  python3 verify_pack.py . --trusted-keys /path/to/trusted-keys.json\n"
        f"  giftcards audit verify-pack {out.name} --trusted-keys /path/to/trusted-keys.json\n\n"
        f"Signing key of this pack: {manifest['key']}\n"
    )
    for path in out.iterdir():
        path.chmod(0o600)
    return manifest


VERIFIER = Path(__file__).with_name("verify_pack_standalone.py")


def pack_subjects(clear: list[dict[str, Any]], fields_named: tuple[str, ...]
                  ) -> Iterator[str]:
    """The customers a pack concerns (each access-logged by whoever exports it, R21): the pack
    holds them as pseudonyms, so `export` hands back the stored fields (`clear`), whose
    customer fields and recipients of sealed data name them."""
    for fields in clear:
        yield from (str(fields[n]) for n in fields_named if fields.get(n))
        if recipient := (fields.get("pii") or {}).get("recipient_subject"):
            yield str(recipient)


def for_pack(checkpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only checkpoints that commit to each market's cards can show no card was left out."""
    return [c for c in checkpoints if "markets" in c["header"]]


def verify_pack(pack: Path, ring: cps.KeyRing | None) -> dict[str, Any]:
    """Everything in the pack recomputed: the manifest's signature by a key of the auditor's
    ring, every file's hash, every checkpoint's signature and its market root (no card left
    out), every chain from its stored fields against the checkpoints' heads, and liability and
    breakage from the events. Without a ring nothing is trusted: never "ok"."""
    problems: list[Problem] = []

    def problem(card: str | None, version: int | None, text: str) -> None:
        problems.append({"card_id": card, "version": version, "problem": text})

    signed = (pack / "manifest.json").read_bytes()
    manifest = orjson.loads(signed)
    market = manifest["market"]
    if ring is None:
        ring = cps.KeyRing.of()
        problem(None, None, "no trusted key ring given (--trusted-keys): the public key inside "
                            "the pack is not a trust root")
    key = ring.key_for({"key": manifest.get("key"), "signed_at": manifest.get("signed_at")})
    try:
        if key is None:
            raise ValueError(f"key {manifest.get('key')} is not in the trusted key ring")
        key.verify(base64.b64decode((pack / "manifest.sig").read_bytes()), signed)
    except (InvalidSignature, ValueError, OSError) as error:
        problem(None, None, f"manifest not signed by a trusted key: {error or 'bad signature'}")
    for name, digest in manifest["files"].items():
        if _sha256(pack / name) != digest:
            problem(None, None, f"{name} differs from the manifest")
    # Ids as pseudonyms: the fields give the redacted chain, which the checkpoints sign (the
    # event hashes, over the clear ids, come as shipped and must link up).
    pseudonyms = manifest.get("ids") == "pseudonyms"
    trusted = []
    for checkpoint in orjson.loads((pack / "checkpoints.json").read_bytes()):
        why = cps.check(checkpoint, ring, market=market)
        if why is None:
            trusted.append(checkpoint)
        else:
            problem(None, None, f"checkpoint at {checkpoint['header']['position']}: {why}")
    chains: dict[str, CardChain] = {}
    lines: dict[str, list[dict[str, Any]]] = {}
    stored: set[tuple[str, int, bytes]] = set()
    for raw in (pack / "chains.jsonl").read_bytes().splitlines():
        line = orjson.loads(raw)
        cid = line["card_id"]
        chain = chains.get(cid) or chains.setdefault(
            cid, CardChain(cid, redacted_fields=pseudonyms))
        chain.feed(line["version"], line["topic"], line["fields"])
        lines.setdefault(cid, []).append(line)
        stored.add((cid, line["version"], orjson.dumps(line, option=orjson.OPT_SORT_KEYS)))
    pending = 0
    for cid, chain in chains.items():
        problems.extend(chain.problems)
        problems.extend(cps.compare(cid, chain.hashes, chain.last_version, trusted,
                                    chain.redacted if pseudonyms else None))
        pending += cps.not_checkpointed(cid, chain.last_version, trusted)
    for cp in trusted:
        for cid, head in cp["heads"].items():
            if cid not in chains:
                problem(cid, int(head[0]), "card in a signed checkpoint is missing from the pack")
    events = 0
    for raw in (pack / "events.jsonl").read_bytes().splitlines():
        line = orjson.loads(raw)
        events += 1
        if (line["card_id"], line["version"],
                orjson.dumps(line, option=orjson.OPT_SORT_KEYS)) not in stored:
            problem(line["card_id"], line["version"], "event of the period not in its chain")
    # The time zone the pack was made in (signed in its manifest); older packs: the shipped one.
    zone = ZoneInfo(manifest["time_zone"]) if manifest.get("time_zone") else (
        shipped_zones().of(market))
    start, end = month_bounds(manifest["period"], zone)
    figures = orjson.loads((pack / "liability.json").read_bytes())
    for when, instant in (("start", start - LAST_US), ("end", end - LAST_US)):
        recomputed = recompute_liability(lines, instant, market)
        if figures[when]["markets"] != recomputed:
            problem(None, None, f"liability.json at the period's {when} says "
                                f"{figures[when]['markets']}, the events give {recomputed}")
    shown = orjson.loads((pack / "breakage.json").read_bytes())["rows"]
    recomputed_breakage = recompute_breakage(lines, market, manifest["period"], zone)
    if shown != recomputed_breakage:
        problem(None, None, f"breakage.json says {shown}, the events give {recomputed_breakage}")
    if not trusted:
        problem(None, None, "no checkpoint signed by a key of the trusted ring")
    return {"ok": not problems, "market": market, "period": manifest["period"],
            "cards": len(chains), "events": events, "checkpoints": len(trusted),
            "key": manifest.get("key"), "not_yet_checkpointed": pending, "problems": problems}


def _kind(topic: str) -> str:
    return topic.rsplit(".", 1)[-1]


def recompute_liability(lines: dict[str, list[dict[str, Any]]], as_of: datetime,
                        market: str) -> list[dict[str, Any]]:
    """What `liability` shows as of `as_of`, from the cards' events alone: a card counts from
    its purchase until redeemed, cancelled or past its validity (R9)."""
    totals: dict[str, list[int]] = {}
    for history in lines.values():
        first = history[0]["fields"]
        if first.get("market") != market or _kind(history[0]["topic"]) != "Purchased" \
                or _instant(first["at"]) > as_of:
            continue
        row = totals.setdefault(first["currency"], [0, 0])
        closed = _instant(first["expires_at"]) <= as_of or any(
            _kind(line["topic"]) in ("Redeemed", "Cancelled", "Expired")
            and _instant(line["fields"]["at"]) <= as_of for line in history)
        if not closed:
            row[0] += int(first["amount"])
            row[1] += 1
    return [{"market": market, "currency": c, "outstanding": o, "open_cards": n}
            for c, (o, n) in sorted(totals.items())]


def recompute_breakage(lines: dict[str, list[dict[str, Any]]], market: str,
                       period: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    """What `breakage` shows for the month: balances forfeited after use and at expiry."""
    totals: dict[str, dict[str, int]] = {}
    for history in lines.values():
        for line in history:
            kind, fields = _kind(line["topic"]), line["fields"]
            if kind not in ("Redeemed", "Expired") or fields.get("market") != market:
                continue
            if month_in(zone, fields["at"]) != period or not int(fields["forfeited"]):
                continue
            row = totals.setdefault(fields["currency"], {"after_use": 0, "expired": 0})
            row["after_use" if kind == "Redeemed" else "expired"] += int(fields["forfeited"])
    return [{"market": market, "currency": c, "month": period, "after_use": r["after_use"],
             "expired": r["expired"], "total": r["after_use"] + r["expired"]}
            for c, r in sorted(totals.items())]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
