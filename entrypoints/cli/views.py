"""View commands: project, projections rebuild, liability, breakage, fraud alerts."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from composition.bootstrap import build_projector
from entrypoints.cli.base import (
    UsageError,
    emit_and_exit,
    examples,
    parse_instant,
    parse_market,
    parse_month,
)
from entrypoints.cli.cards import AS_OF_HELP, MARKET_HELP, service
from entrypoints.cli.kafka_setup import TopicsReady, stop_on_sigterm
from entrypoints.cli.operators import (
    logged_read,
    operator_argument,
)
from entrypoints.cli.trust import trusted_checkpoints
from infra.kafka.topics import Topics
from infra.supervisor import retry_until_done
from projections import sources
from projections.runner import Projector
from projections.schema import VIEW_NAMES
from projections.verify import verify_store

log = logging.getLogger("giftcards.projections")
Progress = Callable[[int, int], None]


@cache
def projector() -> Projector:
    return build_projector(service().settings)


def refresh() -> None:
    """Embedded default: a query first catches up with the event store."""
    if service().settings.kafka_bootstrap is None:
        sources.sync_store(service().app, projector())


SOURCE_HELP = ("where the events come from: kafka (giftcard.events) or store (the event store); "
               "default kafka when KAFKA_BOOTSTRAP_SERVERS is set, else store")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("project", help="run the projections (until SIGTERM)",
                       epilog=examples("project", "project --source store"))
    p.add_argument("--source", choices=["kafka", "store"], help=SOURCE_HELP)
    p.set_defaults(handler=project)

    p = sub.add_parser("projections", help="manage the views")
    views = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    r = views.add_parser("rebuild", help="drop every view and rebuild it from the beginning",
                         epilog=examples("projections rebuild --source store"))
    r.add_argument("--source", choices=["kafka", "store"], help=SOURCE_HELP)
    r.set_defaults(handler=rebuild)

    p = sub.add_parser("liability", help="outstanding balance of open cards, as of an instant",
                       epilog=examples("liability", "liability --market fr "
                                       "--as-of 2026-01-31T23:59:59Z --json"))
    p.add_argument("--market", type=parse_market, help=MARKET_HELP + "; default every market")
    p.add_argument("--as-of", type=parse_instant, help=AS_OF_HELP)
    p.set_defaults(handler=liability)

    p = sub.add_parser("breakage", help="forfeited balances per market and month",
                       epilog=examples("breakage", "breakage --market FR --month 2026-05"))
    p.add_argument("--market", type=parse_market, help=MARKET_HELP + "; default every market")
    p.add_argument("--month", type=parse_month, help="YYYY-MM, e.g. 2026-05 (default: every "
                   "month)")
    p.set_defaults(handler=breakage)

    p = sub.add_parser("fraud", help="fraud alerts")
    fraud = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    a = fraud.add_parser("alerts", help="alerts, oldest first",
                         epilog=examples("fraud alerts --rule F3 --operator cs-agent-7",
                                         "fraud alerts --since 2026-05-01T00:00:00Z "
                                         "--operator cs-agent-7"))
    a.add_argument("--since", type=parse_instant,
                   help="only alerts raised at or after this instant (YYYY-MM-DDTHH:MM:SSZ)")
    a.add_argument("--rule", choices=[f"F{i}" for i in range(1, 7)],
                   help="one rule, F1 (code guessing) to F6")
    operator_argument(a)
    a.set_defaults(handler=fraud_alerts)


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
    checkpoints, problems = trusted_checkpoints(None)
    problems += verify_store(service().app, checkpoints)
    if problems:
        # A rebuild from an altered store would launder the edit into every view.
        emit_and_exit({"ok": False, "refused": "the event store disagrees with its hash chains "
                       "or signed checkpoints; views left as they are", "problems": problems},
                      args.json)
    views = projector()
    started = time.monotonic()
    views.reset()
    show = not args.json and sys.stderr.isatty()
    settings = service().settings
    if source == "store":
        total = sources.store_total(service().app)
        with progress_bar(show, total, "rebuild from store") as bar:
            events = sources.sync_store(service().app, views, progress=bar,
                                         batch_size=settings.projection_batch)
    else:
        bootstrap, topic = settings.kafka_link, Topics(settings.topic_prefix).events
        total = sources.kafka_total(bootstrap, topic, views)
        with progress_bar(show, total, "rebuild from Kafka") as bar:
            events = sources.sync_kafka(bootstrap, topic, views, progress=bar)
    return {"events": events, "seconds": round(time.monotonic() - started, 3),
            "views": list(VIEW_NAMES), "source": source}


def project(args: argparse.Namespace) -> dict[str, Any]:
    source = _source(args)
    stop = stop_on_sigterm()
    settings = service().settings
    topics = Topics.of(settings)
    if source == "kafka":  # the events topic checked against its contract, or created with it
        ready = TopicsReady(settings, settings.kafka_link, topics)
        if not retry_until_done(stop, "Kafka topics", ready):
            return {"source": source, "events": 0, "seconds": 0.0, "stopped": "SIGTERM"}
    views = projector()

    def logged(seen: int, applied: int) -> None:
        log.info("batch: %d messages, %d envelopes applied", seen, applied)

    started = time.monotonic()
    if source == "store":
        events = sources.follow_store(service().app, views, progress=logged,
                                      stop=stop.is_set, batch_size=settings.projection_batch)
    else:
        events = sources.follow_kafka(settings.kafka_link, topics.events,
                                      topics.projections_group, views,
                                      progress=logged, stop=stop.is_set)
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
    """Profiling results about customers: a registered operator, every subject logged (R21)."""
    from projections.queries import alerts

    def read() -> dict[str, Any]:
        refresh()
        return alerts(projector().db, args.since, args.rule)

    return logged_read(args, "fraud alerts", "fraud review", read,
                       lambda found: (a["customer_id"] for a in found["alerts"]))
