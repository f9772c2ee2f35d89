"""Audit commands: verify, checkpoint, keys, seal, export a trail or an evidence pack, verify a
pack."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import orjson

from application.privacy_reads import history_subjects
from entrypoints.cli.base import (
    UsageError,
    emit_and_exit,
    examples,
    parse_market,
    parse_month,
)
from entrypoints.cli.cards import MARKET_HELP, card_id, service
from entrypoints.cli.operators import (
    logged_read,
    operator_argument,
)
from entrypoints.cli.trust import read_ring, ring_file, signing_key, trusted_checkpoints
from entrypoints.cli.views import progress_bar, projector, refresh
from entrypoints.results import sealed_json
from infra.config import ConfigError
from infra.kafka.topics import Topics
from projections.verify import card_ids, export, verify_card

log = logging.getLogger("giftcards.projections")

CARD_HELP = "the card's id (UUID)"
RING_HELP = ("trusted key ring (JSON, or PEM public keys): checkpoints must be signed by one of "
             "its keys within its validity period; default <checkpoint dir>/trusted-keys.json")
KEY_HELP = ("trusted checkpoint public key (PEM); default: the public half of "
            "GIFTCARDS_SIGNING_KEY_FILE")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("audit", help="verify or export a card's audit trail")
    audit = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    v = audit.add_parser("verify", help="replay from the event store and compare with the views",
                         epilog=examples("audit verify 0d1534c6-c16e-4a26-a6e2-78c7f3b5f81e",
                                         "audit verify --all --json"))
    v.add_argument("card_id", nargs="?", type=card_id, help=CARD_HELP + " (or --all)")
    v.add_argument("--all", action="store_true", help="every card (and, with Kafka, the "
                   "published copy)")
    v.add_argument("--public-key", type=Path, help=KEY_HELP)
    v.add_argument("--trusted-keys", type=Path, help=RING_HELP)
    v.set_defaults(handler=audit_verify)
    c = audit.add_parser("checkpoint", help="sign the heads of every card chain (Ed25519)",
                         epilog=examples("audit checkpoint"))
    c.set_defaults(handler=audit_checkpoint)
    g = audit.add_parser("keygen", help="create the checkpoint signing key (Ed25519, mode 0600) "
                         "at GIFTCARDS_SIGNING_KEY_FILE and the chain key at "
                         "GIFTCARDS_CHAIN_KEY_FILE if there are none; print the public key",
                         epilog=examples("audit keygen",
                                         "GIFTCARDS_SIGNING_KEY_FILE=/secrets/signing.pem "
                                         "giftcards audit keygen --json"))
    g.set_defaults(handler=audit_keygen)
    r = audit.add_parser("rotate-key", help="retire the checkpoint signing key (kept in the "
                         "trusted key ring with its validity period), create a new one and sign "
                         "a checkpoint with it", epilog=examples("audit rotate-key"))
    r.set_defaults(handler=audit_rotate_key)
    s = audit.add_parser("seal", help="seal the histories stored before the chain key (or the "
                         "chain) existed under the chain key, then sign a checkpoint",
                         epilog=examples("audit seal"))
    s.set_defaults(handler=audit_seal)
    e = audit.add_parser("export", help="a card's audit trail, or with --period the evidence "
                         "pack of a market and month",
                         epilog=examples("audit export 0d1534c6-c16e-4a26-a6e2-78c7f3b5f81e "
                                         "--format csv --operator cs-agent-7",
                                         "audit export --period 2026-01 --market FR "
                                         "--out evidence-FR-2026-01"))
    e.add_argument("card_id", nargs="?", type=card_id, help=CARD_HELP + " (or --period)")
    e.add_argument("--format", choices=["jsonl", "csv"], default="jsonl",
                   help="a card's trail as JSON lines or CSV (default jsonl); with --json, "
                   "one object holding the records")
    e.add_argument("--period", type=parse_month, help="YYYY-MM: write the evidence pack of "
                   "that month to --out")
    e.add_argument("--market", type=parse_market, help=MARKET_HELP + " (with --period)")
    e.add_argument("--out", type=Path, help="directory of the evidence pack (with --period)")
    e.add_argument("--public-key", type=Path, help=KEY_HELP)
    e.add_argument("--trusted-keys", type=Path, help=RING_HELP)
    operator_argument(e)  # a card's trail names customers; a pack holds every card's history
    e.set_defaults(handler=audit_export)
    k = audit.add_parser("verify-pack", help="verify an evidence pack offline (no database) "
                         "with the auditor's trusted key ring",
                         epilog=examples("audit verify-pack evidence-FR-2026-01 "
                                         "--trusted-keys auditor/trusted-keys.json"))
    k.add_argument("pack", type=Path, help="the evidence pack's directory")
    k.add_argument("--trusted-keys", type=Path,
                   help="the auditor's key ring (JSON from `audit keygen`/`rotate-key`, or PEM "
                   "public keys), from outside the pack; without it the pack is never ok")
    k.set_defaults(handler=audit_verify_pack)


def kafka_problems() -> list[dict[str, Any]]:
    """The store against the copy on giftcard.events, and the checkpoint files against the
    checkpoints published on giftcard.checkpoints (a file removed or replaced is named)."""
    from infra.kafka.checkpoints import published
    from infra.kafka.clients import bootstrap_of
    from infra.kafka.copy import TopicMissingError, compare, published_cards

    settings, app = service().settings, service().app
    topics = Topics(settings.topic_prefix)
    try:
        problems = compare(app.recorder, app.mapper,
                           published_cards(settings.kafka_link, topics.events), app.pseudonyms)
    except TopicMissingError:
        problems = [] if not app.recorder.max_notification_id() else [{
            "card_id": None, "version": None,
            "problem": f"topic {topics.events} does not exist on "
                       f"{bootstrap_of(settings.kafka_link)}: the store's events have no "
                       "published copy to compare with (the relay never ran with this "
                       "prefix, or the topic was deleted)"}]
    files, _ = trusted_checkpoints(None)
    headers = [orjson.dumps(c["header"], option=orjson.OPT_SORT_KEYS) for c in files]
    for copy in published(settings):
        if orjson.dumps(copy["header"], option=orjson.OPT_SORT_KEYS) not in headers:
            problems.append({"card_id": None, "version": None,
                             "problem": f"checkpoint at position {copy['header']['position']} "
                                        "is on giftcard.checkpoints but its file is missing or "
                                        "differs"})
    return problems


def audit_verify(args: argparse.Namespace) -> dict[str, Any]:
    if (args.card_id is None) == (not args.all):
        raise UsageError("give a CARD_ID or --all, not both")
    refresh()
    app, db = service().app, projector().db
    checkpoints, problems = trusted_checkpoints(args.public_key, args.trusted_keys)
    ids = [args.card_id] if args.card_id else list(card_ids(app, db, checkpoints))
    cards = events = 0
    tally: dict[str, int] = {}
    with progress_bar(bool(args.all) and not args.json and sys.stderr.isatty(), len(ids),
                      "verify") as bar:
        for cid in ids:
            count, found = verify_card(app, db, cid, checkpoints, tally)
            cards, events = cards + 1, events + count
            problems.extend(found)
            bar(1, count)
    kafka_copy = None
    if args.all and service().settings.kafka_bootstrap:
        problems.extend(kafka_problems())
        kafka_copy = Topics(service().settings.topic_prefix).events
    result = {"ok": not problems, "cards": cards, "events": events, "compared_with": kafka_copy,
              "checkpoints": len(checkpoints),
              "latest_checkpoint": checkpoints[-1]["header"] if checkpoints else None,
              "not_yet_checkpointed": tally.get("not_yet_checkpointed", 0),
              "problems": problems}
    if problems:
        # Exit 1 like a refusal, with the whole report on stdout.
        emit_and_exit(result, args.json)
    return result


def audit_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    from infra import checkpoints as cps

    svc = service()
    settings = svc.settings
    key = signing_key(create=not settings.production)
    trusted, _ = trusted_checkpoints(None)
    try:
        checkpoint = cps.create(svc.app.recorder, svc.app.mapper, key, svc.app.now(),
                                settings.checkpoint_dir, chain=trusted)
    except cps.CheckpointError as refused:
        emit_and_exit({"ok": False, "refused": str(refused), "problems": refused.problems},
                      args.json)
        raise
    published = None
    if settings.kafka_bootstrap:
        from infra.kafka.checkpoints import publish

        published = publish(settings, checkpoint)
    return {"ok": True, **checkpoint["header"], "directory": str(settings.checkpoint_dir),
            "published": published}


def audit_keygen(args: argparse.Namespace) -> dict[str, Any]:
    """The operator's step that production needs (there, nothing generates the key unasked);
    an existing key is kept, never replaced: its checkpoints stay verifiable."""
    from infra import checkpoints as cps
    from infra.chainkey import load_chain_key
    from infra.config import load_settings

    settings = load_settings()
    path = settings.signing_key_file
    existed = path.exists()
    try:
        key = cps.trusted_signing_key(path, settings.checkpoint_dir, create=True)
    except (OSError, ValueError) as error:
        raise ConfigError(f"GIFTCARDS_SIGNING_KEY_FILE: {error}") from None
    chain_key = settings.chain_key_file
    chain_created = chain_key is not None and not chain_key.exists()
    if chain_key is not None:
        try:
            load_chain_key(chain_key, create=True)
        except (OSError, ValueError) as error:
            raise ConfigError(f"GIFTCARDS_CHAIN_KEY_FILE: {error}") from None
    return {"signing_key_file": str(path), "created": not existed,
            "public_key": cps.public_pem(key).decode(), "fingerprint": cps.fingerprint(key),
            "trusted_keys": str(cps.ring_path(settings.checkpoint_dir)),
            "chain_key_file": str(chain_key) if chain_key else None,
            "chain_key_created": chain_created}


def audit_rotate_key(args: argparse.Namespace) -> dict[str, Any]:
    """The old key stays in the ring, valid until now (its checkpoints and packs still
    verify); the new one is valid from now and signs a checkpoint at once."""
    from infra import checkpoints as cps

    settings, now = service().settings, service().app.now()
    old = signing_key(create=False)
    ring = read_ring(ring_file(), str(ring_file()))
    new = cps.Ed25519PrivateKey.generate()
    ring.retire(old.public_key(), now)
    ring.add(new.public_key(), now)
    path = settings.signing_key_file
    fresh = path.with_name(f".{path.name}.new")
    fresh.unlink(missing_ok=True)
    cps.write_private_key(fresh, new)
    ring_file().write_bytes(ring.dump())  # first: a crash now leaves the old key, still in it
    fresh.replace(path)
    signed = audit_checkpoint(args)
    return {"retired": cps.fingerprint(old), "current": cps.fingerprint(new),
            "trusted_keys": str(ring_file()), "checkpoint": signed}


def audit_seal(args: argparse.Namespace) -> dict[str, Any]:
    """One recorded, signed step: every card whose last event is not sealed under the chain key
    gets a HistorySealed event (its MAC covers the whole earlier history), then a checkpoint
    signs the new heads."""
    from infra.chains import unsealed_cards

    app = service().app
    sealed = [sealed_json(app.seal_history(cid))
              for cid in unsealed_cards(app.recorder, app.mapper)]
    signed = audit_checkpoint(args) if sealed else None
    return {"sealed": len(sealed), "cards": sealed, "checkpoint": signed}


def audit_export(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.period is not None:
        return evidence_pack(args)
    if args.card_id is None:
        raise UsageError("give a CARD_ID, or --period with --market and --out")
    # The trail's actors are the customers its card's history names (projections.audit.actor).
    found = logged_read(args, "audit export CARD_ID", "audit trail", lambda: _trail(args),
                        lambda _: history_subjects(service().app.history(args.card_id)))
    trail = found["trail"]
    if args.json:  # one object, like every command: the records, or the CSV text
        records = ([orjson.loads(line) for line in trail.splitlines()]
                   if args.format == "jsonl" else None)
        return {"card_id": str(args.card_id), "format": args.format, "records": records,
                "csv": trail if args.format == "csv" else None}
    sys.stdout.write(trail)
    return None


def _trail(args: argparse.Namespace) -> dict[str, Any]:
    service().app.show(args.card_id)  # an unknown card is refused `unknown_card`, not empty
    refresh()
    return {"trail": export(projector().db, args.card_id, args.format)}


def evidence_pack(args: argparse.Namespace) -> dict[str, Any]:
    """Every card's stored history of a market and month, with clear customer ids: an auditor
    (or admin) authenticated first, every customer in it access-logged (R21)."""
    from application.privacy_scan import SUBJECT_FIELDS
    from infra import checkpoints as cps
    from projections import evidence

    if args.market is None or args.out is None or args.card_id is not None:
        raise UsageError("--period needs --market and --out, and no CARD_ID")

    clear: list[dict[str, Any]] = []

    def write() -> dict[str, Any]:
        service().app.markets.get(args.market)  # an unknown market is refused here
        refresh()
        checkpoints, problems = trusted_checkpoints(args.public_key, args.trusted_keys)
        checkpoints = evidence.for_pack(checkpoints)
        if problems or not checkpoints:
            emit_and_exit({"ok": False, "refused": "no trusted checkpoint to put in the pack "
                           "(run `audit checkpoint`)", "problems": problems}, args.json)
        key = signing_key(create=False)  # signs the manifest: files, liability, breakage
        app = service().app
        manifest = evidence.export(app.recorder, app.mapper, projector().db, args.market,
                                   args.period, checkpoints, key, app.now(), args.out, clear,
                                   zones=projector().zones)
        assert cps.fingerprint(key) == manifest["key"]
        return {"ok": True, "out": str(args.out), **manifest}

    return logged_read(args, "audit export --period",
                       f"evidence pack {args.market} {args.period}", write,
                       lambda _: evidence.pack_subjects(clear, SUBJECT_FIELDS))


def audit_verify_pack(args: argparse.Namespace) -> dict[str, Any]:
    from projections.evidence import verify_pack

    ring = None
    if args.trusted_keys is not None:
        if args.pack.resolve() in args.trusted_keys.resolve().parents:
            raise UsageError("--trusted-keys must come from outside the pack: a pack cannot "
                             "certify itself")
        ring = read_ring(args.trusted_keys, "--trusted-keys")
    try:
        result = verify_pack(args.pack, ring)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"not a readable evidence pack: {error}") from None
    if result["problems"]:
        emit_and_exit(result, args.json)
    return result
