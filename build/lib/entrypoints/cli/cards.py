"""Card commands: purchase, redeem, cancel, refund, expire, show, history."""

from __future__ import annotations

import argparse
import uuid
from functools import cache
from typing import Any

from entrypoints.cli.base import UsageError, parse_date, parse_instant, parse_text
from infra.bootstrap import Service, build


@cache
def service() -> Service:
    """One service per CLI process, built on first use."""
    return build()


def card_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        # Not echoed: people paste the card's code here, and a code is a bearer secret (R8).
        raise argparse.ArgumentTypeError("not a card id (expected a UUID)") from None


def amount_text(text: str) -> str:
    if len(text) > 40:
        raise argparse.ArgumentTypeError("amount is too long")
    return text


def to_minor(market: str, text: str) -> int:
    return service().app.markets.get(market).to_minor(text)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("purchase", help="buy a card (R1-R5)")
    p.add_argument("--market", required=True, type=parse_text(10))
    p.add_argument("--amount", required=True, type=amount_text, help="major units, e.g. 50.00")
    p.add_argument("--payment-method", required=True, type=parse_text(40))
    p.add_argument("--buyer-id", required=True, type=parse_text(100))
    p.add_argument("--buyer-email", type=parse_text(320))
    p.add_argument("--buyer-name", type=parse_text(200))
    p.add_argument("--recipient-email", type=parse_text(320))
    p.add_argument("--recipient-name", type=parse_text(200))
    p.add_argument("--message", type=parse_text(1000))
    p.add_argument("--order-id", type=parse_text(200))
    p.set_defaults(handler=purchase)

    p = sub.add_parser("redeem", help="pay (part of) an order with a card (R6, R8-R14)")
    p.add_argument("--code", required=True, type=parse_text(64))
    p.add_argument("--market", required=True, type=parse_text(10))
    p.add_argument("--order-id", required=True, type=parse_text(200))
    p.add_argument("--order-total", required=True, type=amount_text)
    p.add_argument("--customer-id", type=parse_text(100))
    p.add_argument("--promo-code", action="append", default=[], type=parse_text(64))
    p.add_argument("--contains-gift-card", action="store_true")
    p.set_defaults(handler=redeem)

    p = sub.add_parser("cancel", help="cancel an unused card within 14 days (R19, R20)")
    p.add_argument("card_id", type=card_id)
    p.add_argument("--code", type=parse_text(64), help="the card's code, as given by the customer")
    p.add_argument("--order-id", type=parse_text(200), help="the purchase order number")
    p.set_defaults(handler=cancel)

    p = sub.add_parser("refund", help="goods of an order paid by card were returned (R16-R18)")
    p.add_argument("--order-id", required=True, type=parse_text(200))
    p.add_argument("--amount", required=True, type=amount_text)
    p.add_argument("--received-on", required=True, type=parse_date)
    p.add_argument("--request-id", type=parse_text(200))
    p.set_defaults(handler=refund)

    p = sub.add_parser("expire", help="expire cards past their validity (R9)")
    p.add_argument("--as-of", type=parse_instant)
    p.set_defaults(handler=expire)

    p = sub.add_parser("show", help="a card's current state")
    p.add_argument("card_id", type=card_id)
    p.add_argument("--as-of", type=parse_instant)
    p.set_defaults(handler=show)

    p = sub.add_parser("history", help="a card's events (no code, no clear personal data)")
    p.add_argument("card_id", type=card_id)
    p.set_defaults(handler=history)


def purchase(args: argparse.Namespace) -> dict[str, Any]:
    app = service().app
    return app.purchase(
        market=args.market,
        amount=to_minor(args.market, args.amount),
        payment_method=args.payment_method,
        buyer_id=args.buyer_id,
        buyer_email=args.buyer_email,
        buyer_name=args.buyer_name,
        recipient_email=args.recipient_email,
        recipient_name=args.recipient_name,
        message=args.message,
        order_id=args.order_id or f"cli-{uuid.uuid4()}",
    )


def redeem(args: argparse.Namespace) -> dict[str, Any]:
    return service().app.redeem(
        code=args.code,
        market=args.market,
        order_id=args.order_id,
        order_total=to_minor(args.market, args.order_total),
        customer_id=args.customer_id,
        source="cli",  # the CLI is its own source: anonymous attempts count against it
        promo_codes=args.promo_code,
        contains_gift_card=args.contains_gift_card,
    )


def cancel(args: argparse.Namespace) -> dict[str, Any]:
    return service().app.cancel(args.card_id, code=args.code, order_id=args.order_id)


def refund(args: argparse.Namespace) -> dict[str, Any]:
    app = service().app
    market = app.order_market(args.order_id)
    return app.refund(
        order_id=args.order_id,
        returned_amount=to_minor(market, args.amount),
        received_on=args.received_on,
        request_id=args.request_id,
    )


def expire(args: argparse.Namespace) -> dict[str, Any]:
    return service().app.expire(args.as_of)


def show(args: argparse.Namespace) -> dict[str, Any]:
    app = service().app
    if args.as_of is not None:
        return app.show_as_of(args.card_id, args.as_of)
    return app.show(args.card_id)


def history(args: argparse.Namespace) -> dict[str, Any]:
    return service().app.history(args.card_id)


__all__ = ["UsageError", "register"]
