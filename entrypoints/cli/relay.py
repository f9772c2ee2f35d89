"""`giftcards relay`: publishes stored events to `giftcard.events` exactly once, until SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from entrypoints.cli.consume import kafka_settings, stop_on_sigterm
from infra.bootstrap import build, build_relay


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("relay", help="publish stored events to Kafka exactly once")
    p.add_argument("--once", action="store_true", help="publish what is stored now, then exit")
    # No default here: the relay's own (BATCH_SIZE) applies, and the CLI does not import Kafka
    # code before a Kafka command runs.
    p.add_argument("--batch-size", type=batch_size, help="events per Kafka transaction")
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
    settings, _, topics = kafka_settings()
    stop = stop_on_sigterm()  # before the first batch: a SIGTERM then still ends it cleanly
    service = build(settings)
    try:
        worker = build_relay(service, topics, args.batch_size)
        if args.once:
            try:
                return {"published": worker.drain(), "position": worker.position}
            finally:
                worker.close()
        worker.run(stop)
        return {"stopped": "relay", "position": worker.position}
    finally:
        service.close()
