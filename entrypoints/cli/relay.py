"""`giftcards relay`: publishes stored events to `giftcard.events` exactly once, until SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from composition.bootstrap import build, build_relay, set_up_schema
from entrypoints.cli.base import examples
from entrypoints.cli.kafka_setup import TopicsReady, kafka_config, stop_on_sigterm
from infra.supervisor import retry_until_done


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("relay", help="publish stored events to Kafka exactly once",
                       epilog=examples("relay", "relay --once --json"))
    p.add_argument("--once", action="store_true", help="publish what is stored now, then exit")
    # No default here: the relay's own (BATCH_SIZE) applies, and the CLI does not import Kafka
    # code before a Kafka command runs.
    p.add_argument("--batch-size", type=batch_size, help="events per Kafka transaction, 1 to 10000 "
                   "(default: the relay's own, 5000)")
    p.set_defaults(handler=relay)


def batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("batch size must be an integer") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("batch size must be between 1 and 10000")
    return value


def relay(args: argparse.Namespace) -> dict[str, Any]:
    settings, bootstrap, topics = kafka_config()
    stop = stop_on_sigterm()  # before the first batch: a SIGTERM then still ends it cleanly
    if args.once:  # one-shot: a broker or database fault is an error to report
        TopicsReady(settings, bootstrap, topics)()
        set_up_schema(settings)
    else:  # long-running: waits for the broker and the database instead of exiting
        if not retry_until_done(stop, "Kafka topics", TopicsReady(settings, bootstrap, topics)):
            return {"stopped": "relay"}
        if not retry_until_done(stop, "the database schema", lambda: set_up_schema(settings)):
            return {"stopped": "relay"}
    service = build(settings, create_tables=False)
    try:
        worker = build_relay(service, topics, args.batch_size)
        if args.once:
            try:
                return {"published": worker.drain(), "position": worker.position}
            finally:
                worker.close()
        worker.run(stop)
        return {"stopped": "relay", "instance": worker.instance}
    finally:
        service.close()
