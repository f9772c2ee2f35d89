"""Code delivery commands: `deliver` (the worker), `deliveries failed|retry` (customer service)."""

from __future__ import annotations

import argparse
from typing import Any

from entrypoints.cli.base import examples, parse_text
from entrypoints.cli.cards import card_id, service
from entrypoints.cli.operators import authenticated_operator, operator_argument


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("deliver", help="e-mail the sealed codes in order (R7) until SIGTERM",
                       epilog=examples("deliver", "deliver --once"))
    p.add_argument("--once", action="store_true", help="deliver what is pending, then exit")
    p.set_defaults(handler=deliver)

    p = sub.add_parser("deliveries", help="code deliveries for customer service (R7)")
    which = p.add_subparsers(dest="deliveries_command", required=True, parser_class=type(p))
    q = which.add_parser("failed", help="deliveries that failed for good: the alert",
                         epilog=examples("deliveries failed --json"))
    q.set_defaults(handler=failed)
    q = which.add_parser("retry", help="send a failed delivery's code again (not a new code)",
                         epilog=examples("deliveries retry 0d1534c6-c16e-4a26-a6e2-78c7f3b5f81e "
                                         "--buyer-email alice@example.org"))
    q.add_argument("card_id", type=card_id, help="the card whose delivery failed (UUID)")
    operator_argument(q)
    q.add_argument("--buyer-email", type=parse_text(320),
                   help="another address: only as a rectification of the buyer's e-mail, with "
                   "--request-id (the previous address is told, without the code), or the "
                   "first address of a card that has none")
    q.add_argument("--request-id", type=parse_text(200),
                   help="the buyer's registered rectification request (gdpr request open)")
    q.set_defaults(handler=retry)


def deliver(args: argparse.Namespace) -> dict[str, Any]:
    from composition.bootstrap import build_delivery_worker, check_mail_link
    from entrypoints.cli.kafka_setup import stop_on_sigterm

    check_mail_link(service().settings)
    worker = build_delivery_worker(service())
    if args.once:
        while worker.drain():
            pass
    else:
        worker.run(stop_on_sigterm())
    return {"delivered": worker.delivered, "failed": worker.failed}


def failed(args: argparse.Namespace) -> dict[str, Any]:
    from application.delivery import Deliveries
    from entrypoints.results import failed_deliveries_json

    return failed_deliveries_json(Deliveries(service()).failed())


def retry(args: argparse.Namespace) -> dict[str, Any]:
    from application.delivery import Deliveries
    from entrypoints.results import retry_json

    operator = authenticated_operator(args, "deliveries retry").name
    return retry_json(Deliveries(service()).retry(
        args.card_id, operator=operator, buyer_email=args.buyer_email,
        request_id=args.request_id,
    ))
