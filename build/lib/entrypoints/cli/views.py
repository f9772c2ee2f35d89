"""View commands: project, projections rebuild, liability, breakage, fraud alerts, audit."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from entrypoints.cli.base import UsageError, parse_instant, parse_text
from entrypoints.cli.cards import card_id, service
from infra.bootstrap import build_projector
from infra.kafka.topics import Topics
from projections import sources
from projections.runner import Projector
from projections.schema import VIEW_NAMES
from projections.verify import card_ids, export, verify_card

log = logging.getLogger("giftcards.projections")
Progress = Callable[[int, int], None]


@cache
def projector() -> Projector:
    return build_projector(service().settings)


def refresh() -> None:
    """Embedded default: a query first catches up with the event store."""
    if service().settings.kafka_bootstrap is None:
        sources.sync_store(service().app, projector())


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("project", help="run the projections (until SIGTERM)")
    p.add_argument("--source", choices=["kafka", "store"])
    p.set_defaults(handler=project)

    p = sub.add_parser("projections", help="manage the views")
    views = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    r = views.add_parser("rebuild", help="drop every view and rebuild it from the beginning")
    r.add_argument("--source", choices=["kafka", "store"])
    r.set_defaults(handler=rebuild)

    p = sub.add_parser("liability", help="outstanding balance of open cards, as of an instant")
    p.add_argument("--market", type=parse_text(10))
    p.add_argument("--as-of", type=parse_instant)
    p.set_defaults(handler=liability)

    p = sub.add_parser("breakage", help="forfeited balances per market and month")
    p.add_argument("--market", type=parse_text(10))
    p.add_argument("--month", type=month)
    p.set_defaults(handler=breakage)

    p = sub.add_parser("fraud", help="fraud alerts")
    fraud = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    a = fraud.add_parser("alerts", help="alerts, oldest first")
    a.add_argument("--since", type=parse_instant)
    a.add_argument("--rule", choices=[f"F{i}" for i in range(1, 7)])
    a.set_defaults(handler=fraud_alerts)

    p = sub.add_parser("audit", help="verify or export a card's audit trail")
    audit = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    v = audit.add_parser("verify", help="replay from the event store and compare with the views")
    v.add_argument("card_id", nargs="?", type=card_id)
    v.add_argument("--all", action="store_true")
    v.set_defaults(handler=audit_verify)
    e = audit.add_parser("export", help="a card's audit trail")
    e.add_argument("card_id", type=card_id)
    e.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    e.set_defaults(handler=audit_export)


def month(text: str) -> str:
    try:
        datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month (YYYY-MM): {text[:20]!r}") from None
    return text


def _source(args: argparse.Namespace) -> str:
    settings = service().settings
    chosen: str = args.source or ("kafka" if settings.kafka_bootstrap else "store")
    if chosen == "kafka" and not settings.kafka_bootstrap:
        raise UsageError("--source kafka needs KAFKA_BOOTSTRAP_SERVERS")
    return chosen


@contextmanager
def progress_bar(show: bool, total: int, label: str) -> Iterator[Progress]:
    """A rich bar (done/total, rate, ETA) on a terminal; nothing otherwise."""
    if not show:
        yield lambda seen, applied: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())
    started = time.monotonic()
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total, rate="")

        def advance(seen: int, applied: int) -> None:
            bar.advance(task, seen)
            done = bar.tasks[0].completed
            rate = done / max(time.monotonic() - started, 1e-6)
            bar.update(task, rate=f"{rate:,.0f}/s")

        yield advance


def rebuild(args: argparse.Namespace) -> dict[str, Any]:
    source = _source(args)
    views = projector()
    started = time.monotonic()
    views.reset()
    show = not args.json and sys.stderr.isatty()
    settings = service().settings
    if source == "store":
        total = sources.store_total(service().app)
        with progress_bar(show, total, "rebuild from store") as bar:
            events = sources.sync_store(service().app, views, progress=bar)
    else:
        bootstrap, topic = str(settings.kafka_bootstrap), Topics(settings.topic_prefix).events
        total = sources.kafka_total(bootstrap, topic, views)
        with progress_bar(show, total, "rebuild from Kafka") as bar:
            events = sources.sync_kafka(bootstrap, topic, views, progress=bar)
    return {"events": events, "seconds": round(time.monotonic() - started, 3),
            "views": list(VIEW_NAMES), "source": source}


def project(args: argparse.Namespace) -> dict[str, Any]:
    source = _source(args)
    views = projector()
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))

    def logged(seen: int, applied: int) -> None:
        log.info("batch: %d messages, %d envelopes applied", seen, applied)

    settings = service().settings
    started = time.monotonic()
    if source == "store":
        events = sources.follow_store(service().app, views, progress=logged,
                                      stop=lambda: bool(stopping),
                                      batch_size=settings.projection_batch)
    else:
        topics = Topics(settings.topic_prefix)
        events = sources.follow_kafka(
            str(settings.kafka_bootstrap), topics.events,
            f"{settings.topic_prefix}giftcards-projections", views,
            progress=logged, stop=lambda: bool(stopping),
        )
    return {"source": source, "events": events, "seconds": round(time.monotonic() - started, 3),
            "stopped": "SIGTERM"}


def liability(args: argparse.Namespace) -> dict[str, Any]:
    from projections.queries import liability as query

    refresh()
    return query(projector().db, args.as_of or service().app.now(), args.market)


def breakage(args: argparse.Namespace) -> dict[str, Any]:
    from projections.queries import breakage as query

    refresh()
    return query(projector().db, args.market, args.month)


def fraud_alerts(args: argparse.Namespace) -> dict[str, Any]:
    from projections.queries import alerts

    refresh()
    return alerts(projector().db, args.since, args.rule)


def audit_verify(args: argparse.Namespace) -> dict[str, Any]:
    if (args.card_id is None) == (not args.all):
        raise UsageError("give a CARD_ID or --all, not both")
    refresh()
    app, db = service().app, projector().db
    ids = [args.card_id] if args.card_id else list(card_ids(app, db))
    cards = events = 0
    problems: list[dict[str, Any]] = []
    with progress_bar(bool(args.all) and not args.json and sys.stderr.isatty(), len(ids),
                      "verify") as bar:
        for cid in ids:
            count, found = verify_card(app, db, cid)
            cards, events = cards + 1, events + count
            problems.extend(found)
            bar(1, count)
    result = {"ok": not problems, "cards": cards, "events": events, "problems": problems}
    if problems:
        # Exit 1 like a refusal, with the whole report on stdout.
        emit_and_exit(result, args.json)
    return result


def emit_and_exit(result: dict[str, Any], as_json: bool) -> None:
    from entrypoints.cli.base import EXIT_REFUSED, emit

    emit(result, as_json)
    sys.stdout.flush()
    raise SystemExit(EXIT_REFUSED)


def audit_export(args: argparse.Namespace) -> dict[str, Any] | None:
    refresh()
    sys.stdout.write(export(projector().db, args.card_id, args.format))
    return None
