"""Long-running processes: `consume checkout` and `serve` (relay + consumer in one process)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from entrypoints.cli.base import parse_text
from infra.bootstrap import (
    build,
    build_checkout_consumer,
    build_projector,
    build_relay,
    kafka_topics,
)
from infra.config import Settings, load_settings
from infra.kafka.topics import Topics

log = logging.getLogger("giftcards.serve")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("consume", help="consume an input topic until SIGTERM")
    p.add_argument("source", choices=["checkout"])
    add_consumer_options(p)
    p.set_defaults(handler=consume)

    p = sub.add_parser(
        "serve", help="relay + checkout consumer + projections in one process until SIGTERM"
    )
    add_consumer_options(p)
    p.add_argument("--without-projections", action="store_true", help="views run elsewhere")
    p.set_defaults(handler=serve)


def add_consumer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-poll-records", type=int, default=2000, help="messages per poll")
    p.add_argument(
        "--instance-id",
        type=parse_text(100),
        help="stable id of this consumer (static group membership; unique per process)",
    )


def kafka_settings() -> tuple[Settings, str, Topics]:
    settings = load_settings()
    return settings, *kafka_topics(settings)


def stop_on_sigterm() -> threading.Event:
    """SIGTERM/SIGINT ask every loop to finish its batch, commit and close."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def checkout_loop(
    settings: Settings, bootstrap: str, topics: Topics, args: argparse.Namespace
) -> Any:
    def run(stop: threading.Event) -> None:
        # Built in the thread that uses it: SQLite connections are bound to their thread.
        service = build(settings)
        try:
            build_checkout_consumer(
                service,
                topics,
                instance_id=args.instance_id,
                max_poll_records=args.max_poll_records,
            ).run(stop)
        finally:
            service.close()

    return run


def consume(args: argparse.Namespace) -> dict[str, Any]:
    stop = stop_on_sigterm()
    settings, bootstrap, topics = kafka_settings()
    checkout_loop(settings, bootstrap, topics, args)(stop)
    return {"stopped": "consume checkout"}


def relay_loop(settings: Settings, bootstrap: str, topics: Topics) -> Any:
    def run(stop: threading.Event) -> None:
        service = build(settings)
        try:
            build_relay(service, topics).run(stop)
        finally:
            service.close()

    return run


def projections_loop(settings: Settings, topics: Topics) -> Any:
    from projections import sources

    def run(stop: threading.Event) -> None:
        views = build_projector(settings)  # built in its thread, like the others
        sources.follow_kafka(
            str(settings.kafka_bootstrap),
            topics.events,
            f"{topics.prefix}giftcards-projections",
            views,
            progress=lambda seen, done: log.info("projections: %d seen, %d applied", seen, done),
            stop=stop.is_set,
        )

    return run


def serve(args: argparse.Namespace) -> dict[str, Any]:
    """Each loop has its own Service (connections are not shared across threads)."""
    stop = stop_on_sigterm()
    settings, bootstrap, topics = kafka_settings()
    # Create the tables once, here: concurrent first-time schema creation races on SQLite.
    build(settings).close()
    loops: dict[str, Callable[[threading.Event], None]] = {
        "relay": relay_loop(settings, bootstrap, topics),
        "checkout": checkout_loop(settings, bootstrap, topics, args),
    }
    if not args.without_projections:
        loops["projections"] = projections_loop(settings, topics)
    failed: list[str] = []
    threads = [
        threading.Thread(target=_guarded, args=(name, loop, stop, failed), name=name, daemon=True)
        for name, loop in loops.items()
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.5)
    if failed:
        raise RuntimeError(f"loops failed: {', '.join(sorted(failed))}")
    return {"stopped": "serve", "loops": sorted(loops)}


def _guarded(
    name: str, loop: Callable[[threading.Event], None], stop: threading.Event, failed: list[str]
) -> None:
    # One loop failing stops the others: a half-running service would hide the failure.
    try:
        loop(stop)
    except Exception:
        log.exception("%s loop failed; stopping the service", name)
        failed.append(name)
        stop.set()
