"""`giftcards status`: the operators' view (relay lag, consumer lag, dead letters, active relay)."""

from __future__ import annotations

import argparse
from typing import Any

from composition.bootstrap import build, build_projector
from entrypoints.cli.base import examples
from entrypoints.cli.kafka_setup import kafka_config


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("status", help="relay lag, consumer lag per partition, dead letters",
                       epilog=examples("status", "status --json"))
    p.set_defaults(handler=status)


def status(args: argparse.Namespace) -> dict[str, Any]:
    from composition.status import status as snapshot

    settings, _, topics = kafka_config()
    service = build(settings, create_tables=False)
    views = build_projector(settings)
    try:
        return snapshot(service, lambda: views.positions(topics.events))
    finally:
        views.db.close()
        service.close()
