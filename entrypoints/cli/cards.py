"""Card commands: purchase, redeem, cancel, refund, expire, show, history."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from application.commands import CancelCard, PurchaseCard, RedeemCard, RefundOrder
from entrypoints.cli.base import (
    UsageError,
    examples,
    parse_date,
    parse_id,
    parse_instant,
    parse_market,
    parse_text,
)
from entrypoints.cli.context import service
from entrypoints.results import (
    cancellation_json,
    card_as_of_json,
    card_json,
    expiry_json,
    history_json,
    purchase_json,
    redemption_json,
    refund_json,
)


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


MARKET_HELP = "country platform, any case (fr = FR); one of the markets file's (FR, BE, DE, …)"
AS_OF_HELP = "instant, YYYY-MM-DDTHH:MM[:SS]Z or with an offset (default: now)"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from entrypoints.cli.operators import operator_argument  # it needs this module's service

    p = sub.add_parser("purchase", help="buy a card (R1-R5)",
                       description="Buy a gift card; its code is shown once, in this reply.",
                       epilog=examples(
                           "purchase --market FR --amount 50 --payment-method card "
                           "--buyer-id C1 --buyer-email alice@example.org --order-id O1",
                           "purchase --market fr --amount 25.50 --payment-method card "
                           "--buyer-id C1 --message 'Joyeux anniversaire' --json"))
    p.add_argument("--market", required=True, type=parse_market, help=MARKET_HELP)
    p.add_argument("--amount", required=True, type=amount_text,
                   help="decimal in the market's major units, 20 to 500 (e.g. 50 or 50.00)")
    p.add_argument("--payment-method", required=True, type=parse_text(40),
                   help="how the card is paid: only `card` (a bank card, R3) is accepted")
    p.add_argument("--buyer-id", required=True, type=parse_id("buyer_id"),
                   help="the buyer's customer id (a data subject, P1-P5)")
    p.add_argument("--buyer-email", type=parse_text(320),
                   help="where the code is e-mailed (R7); encrypted per subject")
    p.add_argument("--buyer-name", type=parse_text(200),
                   help="the buyer's name, shown in the e-mails; encrypted per subject")
    p.add_argument("--recipient-email", type=parse_text(320),
                   help="the recipient's e-mail; encrypted per subject")
    p.add_argument("--recipient-name", type=parse_text(200),
                   help="the recipient's name; encrypted per subject")
    p.add_argument("--message", type=parse_text(1000),
                   help="personal message (quote it: 'Joyeux anniversaire'), ≤ 1000 characters")
    p.add_argument("--order-id", type=parse_id("order_id"),
                   help="the purchase order id: the idempotency key, a repeat returns the same "
                   "card without its code (default: a new id)")
    p.set_defaults(handler=purchase)

    p = sub.add_parser("redeem", help="pay (part of) an order with a card (R6, R8-R14)",
                       description="Use a card, once, on an order; what it does not cover is "
                       "paid by bank card, what it leaves is forfeited (R11, R12).",
                       epilog=examples("redeem --code ABCDEF-GHJKLM-NPQRST --market FR "
                                       "--order-id O2 --order-total 80 --customer-id C2"))
    p.add_argument("--code", required=True, type=parse_text(64),
                   help="the card's code, any case and separators")
    p.add_argument("--market", required=True, type=parse_market, help=MARKET_HELP)
    p.add_argument("--order-id", required=True, type=parse_id("order_id"),
                   help="the order paid with the card (idempotency key)")
    p.add_argument("--order-total", required=True, type=amount_text,
                   help="the order's total, decimal in major units (e.g. 80.00)")
    p.add_argument("--customer-id", type=parse_id("customer_id"),
                   help="who pays; unknown codes count against them (R8), else against the CLI")
    p.add_argument("--promo-code", action="append", default=[], type=parse_text(64),
                   help="a promotion code on the order (repeatable); cards do not combine (R13)")
    p.add_argument("--contains-gift-card", action="store_true",
                   help="the order buys a gift card: a card cannot pay for one (R14)")
    p.set_defaults(handler=redeem)

    p = sub.add_parser("cancel", help="cancel an unused card within 14 days (R19, R20)",
                       epilog=examples("cancel --order-id O1 --code ABCDEF-GHJKLM-NPQRST"))
    # R20: the purchase order id AND the code, both checked; the card id is optional.
    p.add_argument("card_id", nargs="?", type=card_id, help="the card's id (UUID), optional")
    p.add_argument("--code", required=True, type=parse_text(64),
                   help="the card's code, as given by the customer")
    p.add_argument("--order-id", required=True, type=parse_id("order_id"),
                   help="the purchase order number")
    p.set_defaults(handler=cancel)

    p = sub.add_parser("refund", help="goods of an order paid by card were returned (R16-R18)",
                       description="The part paid by card comes back as a NEW card (R17), the "
                       "rest to the other payment method.",
                       epilog=examples("refund --order-id O2 --amount 60 --received-on 2026-01-14"))
    p.add_argument("--order-id", required=True, type=parse_id("order_id"),
                   help="the order that a card paid (part of)")
    p.add_argument("--amount", required=True, type=amount_text,
                   help="value of the returned goods, decimal in major units (e.g. 60.00)")
    p.add_argument("--received-on", required=True, type=parse_date,
                   help="day the goods came back, YYYY-MM-DD (30-day withdrawal period, R16)")
    p.add_argument("--request-id", type=parse_id("request_id"),
                   help="the return's own id: a repeat is refused duplicate_request instead of "
                   "refunding twice (default: none)")
    p.add_argument("--customer-id", type=parse_text(100),
                   help="the customer of the returned order: the refund card is theirs (R17) "
                   "(default: whoever paid the order with the card)")
    p.add_argument("--customer-email", type=parse_text(320),
                   help="where the refund card is e-mailed; without it the card waits for "
                   "customer service (`deliveries retry`), never mailed to anyone else")
    p.add_argument("--customer-name", type=parse_text(200), help="the customer's name")
    p.set_defaults(handler=refund)

    p = sub.add_parser("expire", help="expire cards past their validity (R9)",
                       epilog=examples("expire", "expire --as-of 2026-08-11T00:00:00Z"))
    p.add_argument("--as-of", type=parse_instant, help=AS_OF_HELP)
    p.set_defaults(handler=expire)

    p = sub.add_parser("show", help="a card's current state",
                       epilog=examples("show 0d1534c6-c16e-4a26-a6e2-78c7f3b5f81e",
                                       "show 0d1534c6-c16e-4a26-a6e2-78c7f3b5f81e "
                                       "--as-of 2026-02-01T00:00:00Z --json"))
    p.add_argument("card_id", type=card_id, help="the card's id (UUID)")
    p.add_argument("--as-of", type=parse_instant, help=AS_OF_HELP)
    p.set_defaults(handler=show)

    p = sub.add_parser("history", help="a card's events (no code, no clear personal data; "
                       "the customer ids it names need a registered operator, access-logged)",
                       epilog=examples("history 0d1534c6-c16e-4a26-a6e2-78c7f3b5f81e "
                                       "--operator cs-agent-7"))
    p.add_argument("card_id", type=card_id, help="the card's id (UUID)")
    operator_argument(p)
    p.set_defaults(handler=history)


def purchase(args: argparse.Namespace) -> dict[str, Any]:
    app = service().app
    return purchase_json(app.purchase(PurchaseCard(
        market=args.market, amount=to_minor(args.market, args.amount),
        payment_method=args.payment_method, buyer_id=args.buyer_id, buyer_email=args.buyer_email,
        buyer_name=args.buyer_name, recipient_email=args.recipient_email,
        recipient_name=args.recipient_name, message=args.message,
        order_id=args.order_id or f"cli-{uuid.uuid4()}",
    )))


def redeem(args: argparse.Namespace) -> dict[str, Any]:
    return redemption_json(service().app.redeem(RedeemCard(
        code=args.code,
        market=args.market,
        order_id=args.order_id,
        order_total=to_minor(args.market, args.order_total),
        customer_id=args.customer_id,
        source="cli",  # the CLI is its own source: anonymous attempts count against it
        promo_codes=tuple(args.promo_code or ()),
        contains_gift_card=args.contains_gift_card,
    )))


def cancel(args: argparse.Namespace) -> dict[str, Any]:
    return cancellation_json(
        service().app.cancel(CancelCard(
            card_id=args.card_id, code=args.code, order_id=args.order_id,
        )))


def refund(args: argparse.Namespace) -> dict[str, Any]:
    app = service().app
    market = app.order_market(args.order_id)
    return refund_json(app.refund(RefundOrder(
        order_id=args.order_id, returned_amount=to_minor(market, args.amount),
        received_on=args.received_on, request_id=args.request_id, customer_id=args.customer_id,
        customer_email=args.customer_email, customer_name=args.customer_name,
    )))


def expire(args: argparse.Namespace) -> dict[str, Any]:
    return expiry_json(service().app.expire(args.as_of))


def show(args: argparse.Namespace) -> dict[str, Any]:
    app = service().app
    if args.as_of is not None:
        return card_as_of_json(app.show_as_of(args.card_id, args.as_of))
    return card_json(app.show(args.card_id))


def history(args: argparse.Namespace) -> dict[str, Any]:
    """Customer ids are personal data: a registered operator, each one logged (R21)."""
    from application.privacy_reads import history_subjects
    from entrypoints.cli.operators import logged_read

    return history_json(logged_read(args, "history", "card history",
                                    lambda: service().app.history(args.card_id),
                                    history_subjects))


__all__ = ["UsageError", "register", "service"]
