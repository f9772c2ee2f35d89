"""Long-running processes: `consume checkout` and `serve` (relay + consumer in one process)."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable
from typing import Any

from composition.bootstrap import (
    build,
    build_checkout_consumer,
    build_delivery_worker,
    build_projector,
    build_relay,
    check_mail_link,
    set_up_schema,
)
from entrypoints.cli import api_parts as api
from entrypoints.cli.base import examples, parse_text
from entrypoints.cli.kafka_setup import (
    TopicsReady,
    check_link,
    kafka_config,
    kafka_settings,
    stop_on_sigterm,
)
from infra.config import ConfigError, KafkaLink, Settings
from infra.kafka.topics import Topics
from infra.supervisor import Part, retry_until_done, run_parts

log = logging.getLogger("giftcards.serve")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("consume", help="consume an input topic until SIGTERM",
                       epilog=examples("consume checkout --instance-id consumer-1"))
    p.add_argument("source", choices=["checkout"],
                   help="the input: checkout (order.checkout → replies and dead letters)")
    add_consumer_options(p)
    p.set_defaults(handler=consume)

    p = sub.add_parser(
        "serve",
        help="relay, checkout consumer, code deliveries and projections in one process",
        epilog=examples("serve", "serve --instance-id serve-1 --api-port 8080",
                        "serve --without-projections --without-api"),
    )
    add_consumer_options(p)
    p.add_argument("--without-projections", action="store_true", help="views run elsewhere")
    p.add_argument("--without-api", action="store_true", help="no HTTP API in this process")
    api.add_api_options(p, prefix="api-")
    p.set_defaults(handler=serve)


def add_consumer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-poll-records", type=int, default=2000, help="messages per poll")
    p.add_argument(
        "--instance-id",
        type=parse_text(100),
        help="stable id of this consumer (static group membership; unique per process)",
    )


def checkout_loop(
    settings: Settings, bootstrap: KafkaLink, topics: Topics, args: argparse.Namespace
) -> Part:
    def run(stop: threading.Event) -> None:
        # Built in the thread that uses it: SQLite connections are bound to their thread.
        service = build(settings, create_tables=False)
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
    set_up_schema(settings)
    checkout_loop(settings, bootstrap, topics, args)(stop)
    return {"stopped": "consume checkout"}


def delivery_loop(settings: Settings) -> Part:
    def run(stop: threading.Event) -> None:
        service = build(settings, create_tables=False)
        try:
            build_delivery_worker(service).run(stop)
        finally:
            service.close()

    return run


def relay_loop(settings: Settings, bootstrap: KafkaLink, topics: Topics) -> Part:
    def run(stop: threading.Event) -> None:
        service = build(settings, create_tables=False)
        try:
            build_relay(service, topics).run(stop)
        finally:
            service.close()

    return run


def projections_loop(settings: Settings, topics: Topics) -> Part:
    from projections import sources

    def run(stop: threading.Event) -> None:
        views = build_projector(settings)  # built in its thread, like the others
        try:
            sources.follow_kafka(
                settings.kafka_link,
                topics.events,
                topics.projections_group,
                views,
                progress=lambda seen, done: log.info(
                    "projections: %d seen, %d applied", seen, done
                ),
                stop=stop.is_set,
            )
        finally:
            views.db.close()

    return run


PURGE_EVERY_S = 3600.0


def privacy_loop(settings: Settings) -> Part:
    """Retention purge and KEK rotation (P2): at start, then hourly."""
    from entrypoints.cli.gdpr import run_purge

    def run(stop: threading.Event) -> None:
        service = build(settings, create_tables=False)
        try:
            while not stop.is_set():
                report = run_purge(service)
                log.info(
                    "privacy: %d subjects past retention erased, %d pending erasures finished%s",
                    report["subjects_erased"], report["pending_erasures_completed"],
                    ", KEK rotated" if "kek_rotation" in report else "",
                )
                stop.wait(PURGE_EVERY_S)
        finally:
            service.close()

    return run


def checkpoints_loop(settings: Settings) -> Part:
    """Audit: a signed checkpoint every N stored events or minutes and, in between, an
    increment of the heads that changed every few seconds (each published once the topics
    are there). Only the instance holding the checkpoint lease signs; the others stand by."""
    from infra import checkpoints as cps
    from infra.checkpoint_signer import SigningLease, every
    from infra.lease import lease_clock

    def run(stop: threading.Event) -> None:
        service = build(settings, create_tables=False)
        lease = SigningLease(service.db, seconds=settings.relay_lease_seconds,
                             clock=lease_clock(service))
        try:
            key = cps.trusted_signing_key(settings.signing_key_file, settings.checkpoint_dir,
                                          create=not settings.production)
            checkpointer = cps.Checkpointer(service.app.recorder, service.app.mapper)
            # The store must not contradict the latest trusted checkpoint, even the first time.
            ring = cps.KeyRing.load(cps.ring_path(settings.checkpoint_dir).read_bytes())
            good, _ = cps.trusted(settings.checkpoint_dir, ring)
            checkpointer.follow(good)

            from infra.kafka.checkpoints import Publisher

            publish = Publisher(settings)

            def sign() -> None:
                checkpoint = checkpointer.sign(key, service.app.now(), settings.checkpoint_dir)
                publish(checkpoint)
                log.info("checkpoint signed at position %d", checkpoint["header"]["position"])

            def increment() -> None:
                signed = checkpointer.sign_increment(key, service.app.now(),
                                                     settings.checkpoint_dir)
                if signed is not None:
                    publish(signed)

            seconds = settings.checkpoint_increment_seconds
            try:
                every(checkpointer, sign, settings.checkpoint_every_events,
                          settings.checkpoint_every_minutes * 60, stop, poll=seconds or 5.0,
                          increment=increment if seconds else None, active=lease.held)
            finally:
                publish.close()
        finally:
            lease.release()
            service.close()

    return run


def after(first: Callable[[], None], part: Part) -> Part:
    def run(stop: threading.Event) -> None:
        first()
        part(stop)

    return run


def serve(args: argparse.Namespace) -> dict[str, Any]:
    """ONE schema set-up, then each part (relay, checkout consumer, projections) in its own
    thread with its own Service (connections are not shared across threads), restarted with
    backoff when it fails. Only SIGTERM/SIGINT end the process, and a Kafka link the brokers
    refuse at start (certificate, credentials: a setting to fix, named in the error)."""

    stop = stop_on_sigterm()
    settings, bootstrap, topics = kafka_config()
    settings = api.with_console(settings, args)
    from entrypoints.cli.gdpr import create_privacy_tables

    views = [] if args.without_projections else [lambda: build_projector(settings).db.close()]
    steps = [*views, lambda: create_privacy_tables(settings)]
    if not retry_until_done(stop, "the database schema", lambda: set_up_schema(settings, *steps)):
        return {"stopped": "serve", "loops": []}
    check_link(bootstrap)
    check_mail_link(settings)
    ready = TopicsReady(settings, bootstrap, topics)
    try:  # a topic that breaks the contract stops serve before any part starts
        ready()
    except ConfigError:
        raise
    except Exception as exc:  # the broker is away: each part waits for it on its own
        log.info("Kafka topics not checked yet (%s): each part checks them at its start",
                 type(exc).__name__)
    loops: dict[str, Part] = {
        "relay": after(ready, relay_loop(settings, bootstrap, topics)),
        "checkout": after(ready, checkout_loop(settings, bootstrap, topics, args)),
        "deliveries": delivery_loop(settings),  # needs no broker
    }
    if not args.without_projections:
        loops["projections"] = after(ready, projections_loop(settings, topics))
    loops["checkpoints"] = checkpoints_loop(settings)
    loops["privacy"] = privacy_loop(settings)
    if args.api_port is not None and not args.without_api:
        loops["api"] = api.api_part(settings, args.api_host, args.api_port, args.api_workers)
        loops["holds"] = api.sweep_part(settings)
    run_parts(loops, stop)
    return {"stopped": "serve", "loops": sorted(loops)}
