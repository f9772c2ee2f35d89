"""The auditor's evidence pack of one market and month, and its offline verification."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from infra import checkpoints as cps
from infra.chains import CARD_TOPIC_PREFIX, CardChain, fields_of
from infra.db import Database
from projections.handlers import zone
from projections.queries import breakage, liability

Problem = dict[str, Any]
FILES = ("chains.jsonl", "events.jsonl", "liability.json", "breakage.json", "checkpoints.json",
         "public-key.pem")


def month_bounds(period: str, market: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of `YYYY-MM` in the market's local
    time, as UTC instants: finance closes months locally, and so does the breakage view the
    pack ships (`handlers.month_of`)."""
    local = zone(market)
    first = datetime.strptime(period, "%Y-%m")
    following = (first + timedelta(days=32)).replace(day=1)
    return (first.replace(tzinfo=local).astimezone(UTC),
            following.replace(tzinfo=local).astimezone(UTC))


def export(recorder: Any, mapper: Any, views: Database, market: str, period: str,
           checkpoints: list[dict[str, Any]], public_pem: bytes, out: Path) -> dict[str, Any]:
    """Writes the pack: the complete stored histories of the market's cards with an event in
    the period (`chains.jsonl`, what the chains are recomputed from), the period's events
    (`events.jsonl`), liability at its start and end, breakage by cause, the signed
    checkpoints and their public key, a manifest of file hashes and the command that
    verifies it all offline (`VERIFY.txt`)."""
    start, end = month_bounds(period, market)
    histories: dict[str, list[dict[str, Any]]] = {}
    in_period: set[str] = set()
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
            histories.setdefault(cid, []).append(
                {"card_id": cid, "version": n.originator_version, "position": n.id,
                 "topic": n.topic, "fields": fields}
            )
            at = fields.get("at")
            if fields.get("market") == market and at and start <= _instant(at) < end:
                in_period.add(cid)
        position = page[-1].id + 1
    # Every card's history names customers: the pack is its reader's alone (0700, files 0600).
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    out.chmod(0o700)
    events = 0
    with (out / "chains.jsonl").open("wb") as chains, (out / "events.jsonl").open("wb") as period_:
        for cid in sorted(in_period):
            for line in histories[cid]:
                chains.write(orjson.dumps(line) + b"\n")
                at = line["fields"].get("at")
                if at and start <= _instant(at) < end:
                    period_.write(orjson.dumps(line) + b"\n")
                    events += 1
    last_us = timedelta(microseconds=1)
    (out / "liability.json").write_bytes(orjson.dumps({
        "start": liability(views, start - last_us, market),
        "end": liability(views, end - last_us, market),
    }, option=orjson.OPT_INDENT_2))
    (out / "breakage.json").write_bytes(
        orjson.dumps(breakage(views, market, period), option=orjson.OPT_INDENT_2)
    )
    (out / "checkpoints.json").write_bytes(orjson.dumps(checkpoints))
    (out / "public-key.pem").write_bytes(public_pem)
    manifest = {"market": market, "period": period, "cards": len(in_period), "events": events,
                "files": {name: _sha256(out / name) for name in FILES}}
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    (out / "VERIFY.txt").write_text(
        "Verify offline, with the project's CLI and the public key you trust:\n\n"
        f"  giftcards audit verify-pack {out.name} --public-key public-key.pem\n"
    )
    for path in out.iterdir():
        path.chmod(0o600)
    return manifest


def verify_pack(pack: Path, public_pem: bytes) -> dict[str, Any]:
    """Everything in the pack recomputed: file hashes, every chain from its stored fields, every
    checkpoint's signature and root, each chain against the checkpoints' heads; events after
    the latest checkpoint are counted as not yet checkpointed."""
    problems: list[Problem] = []

    def problem(card: str | None, version: int | None, text: str) -> None:
        problems.append({"card_id": card, "version": version, "problem": text})

    manifest = orjson.loads((pack / "manifest.json").read_bytes())
    for name, digest in manifest["files"].items():
        if name != "public-key.pem" and _sha256(pack / name) != digest:
            problem(None, None, f"{name} differs from the manifest")
    key = cps.load_public_key(public_pem)
    trusted = []
    for checkpoint in orjson.loads((pack / "checkpoints.json").read_bytes()):
        why = cps.check(checkpoint, key)
        if why is None:
            trusted.append(checkpoint)
        else:
            problem(None, None, f"checkpoint at {checkpoint['header']['position']}: {why}")
    chains: dict[str, CardChain] = {}
    stored: set[tuple[str, int, bytes]] = set()
    for raw in (pack / "chains.jsonl").read_bytes().splitlines():
        line = orjson.loads(raw)
        cid = line["card_id"]
        chain = chains.get(cid) or chains.setdefault(cid, CardChain(cid))
        chain.feed(line["version"], line["topic"], line["fields"])
        stored.add((cid, line["version"], orjson.dumps(line, option=orjson.OPT_SORT_KEYS)))
    pending = 0
    for cid, chain in chains.items():
        problems.extend(chain.problems)
        problems.extend(cps.compare(cid, chain.hashes, chain.last_version, trusted))
        pending += cps.not_checkpointed(cid, chain.last_version, trusted)
    events = 0
    for raw in (pack / "events.jsonl").read_bytes().splitlines():
        line = orjson.loads(raw)
        events += 1
        if (line["card_id"], line["version"],
                orjson.dumps(line, option=orjson.OPT_SORT_KEYS)) not in stored:
            problem(line["card_id"], line["version"], "event of the period not in its chain")
    if not trusted:
        problem(None, None, "no checkpoint signed by the given key")
    return {"ok": not problems, "market": manifest["market"], "period": manifest["period"],
            "cards": len(chains), "events": events, "checkpoints": len(trusted),
            "not_yet_checkpointed": pending, "problems": problems}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
