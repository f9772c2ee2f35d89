"""`giftcards gdpr ...`: erasure, export, objection, rectification, restriction, request register,
access log (R21, P1-P4)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from application.operators import Operators
from application.privacy import Privacy
from application.privacy_erasure import years_before
from application.privacy_reads import iter_subjects
from application.privacy_requests import REQUEST_TYPES
from composition.bootstrap import build, build_projector
from domain.operators import ROLES
from domain.subjects import RECTIFIABLE
from entrypoints.cli.base import (
    Parser,
    UsageError,
    examples,
    parse_date,
    parse_text,
)
from entrypoints.cli.cards import service
from entrypoints.cli.operators import (
    authenticated_operator,
    logged_read,
    operator_argument,
    operator_key,
    reader,
)
from infra.config import Settings
from infra.service import Service
from projections.retention import purge_fraud_data

SUBJECT = parse_text(100)
REQUEST_HELP = "the rights request's id (from `gdpr request open`)"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    gdpr = sub.add_parser("gdpr", help="data subjects' rights (R21, P1-P5)")
    cmds = gdpr.add_subparsers(dest="gdpr_command", required=True, parser_class=Parser)

    register_operators(cmds)

    p = cmds.add_parser("subject", help="the pseudonymous subject id of a recipient's email",
                        epilog=examples("gdpr subject --email bob@example.org --operator alice"))
    p.add_argument("--email", required=True, type=parse_text(320), help="the e-mail address")
    operator_argument(p)
    p.set_defaults(
        handler=lambda a: Privacy(service()).subject_for_email(
            a.email, reader(a, "gdpr subject", "subject lookup")
        )
    )

    p = cmds.add_parser(
        "pseudonym", help="the pseudonym of a customer or order id on giftcard.events, or back",
        epilog=examples("gdpr pseudonym --customer-id C1 --operator alice",
                        "gdpr pseudonym --order-id O1 --operator alice",
                        "gdpr pseudonym --resolve cus_6b86b273ff34fce19d6b804eff5a3f57 "
                        "--operator alice --request-id R1"))
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--customer-id", type=SUBJECT, help="a customer (or subject) id")
    which.add_argument("--order-id", type=parse_text(200), help="an order id")
    which.add_argument("--resolve", type=parse_pseudonym,
                       help="a published pseudonym (cus_… or ord_…): the id behind it")
    p.add_argument("--request-id", type=parse_text(200),
                   help="the request or case it is looked up for (logged with the access)")
    operator_argument(p)
    p.set_defaults(handler=pseudonym)

    p = cmds.add_parser("erase", help="crypto-shred a subject's personal data (P2)",
                        epilog=examples("gdpr erase C1 --email bob@example.org --request-id R1 "
                                        "--operator alice"))
    subjects_arguments(p)
    p.add_argument("--request-id", required=True, type=parse_text(200), help=REQUEST_HELP)
    operator_argument(p)
    p.set_defaults(
        handler=lambda a: Privacy(service()).erase(subjects(a), a.request_id,
                                                    acting(a, "gdpr erase"))
    )

    p = cmds.add_parser("object", help="record an objection to profiling (P4)",
                        epilog=examples("gdpr object C1 --request-id R2 --operator alice"))
    subjects_arguments(p)
    p.add_argument("--request-id", required=True, type=parse_text(200), help=REQUEST_HELP)
    operator_argument(p)
    p.set_defaults(
        handler=lambda a: Privacy(service()).object(subjects(a), a.request_id,
                                                     acting(a, "gdpr object"))
    )

    p = cmds.add_parser("rectify", help="correct a subject's e-mail or name (art. 16)",
                        epilog=examples("gdpr rectify C1 --field email --value new@example.org "
                                        "--request-id R2 --operator alice"))
    p.add_argument("subject_id", type=SUBJECT, help="a customer id or a subject pseudonym")
    p.add_argument("--field", required=True, choices=RECTIFIABLE,
                   help=f"the field to correct: one of {', '.join(RECTIFIABLE)}")
    p.add_argument("--value", required=True, type=parse_text(320),
                   help="the corrected value (sealed under the subject's key, never logged)")
    p.add_argument("--request-id", required=True, type=parse_text(200), help=REQUEST_HELP)
    operator_argument(p)
    p.set_defaults(
        handler=lambda a: Privacy(service()).rectify(
            a.subject_id, a.field, a.value, a.request_id, acting(a, "gdpr rectify")
        )
    )

    for name, verb, what in (
        ("restrict", "restrict", "keep the data but stop processing it (art. 18)"),
        ("unrestrict", "unrestrict", "lift a restriction, by its request id (art. 18(3))"),
    ):
        p = cmds.add_parser(name, help=what,
                            epilog=examples(f"gdpr {name} C1 --request-id R3 --operator alice"))
        subjects_arguments(p)
        p.add_argument("--request-id", required=True, type=parse_text(200), help=REQUEST_HELP)
        operator_argument(p)
        p.set_defaults(handler=lambda a, verb=verb: getattr(Privacy(service()), verb)(
            subjects(a), a.request_id, acting(a, f"gdpr {verb}")
        ))

    p = cmds.add_parser("purge", help="crypto-shred personal data past its retention period",
                        epilog=examples("gdpr purge --json"))
    p.set_defaults(handler=purge)

    p = cmds.add_parser("rotate-kek", help="new key-encryption key; older ones destroyed",
                        epilog=examples("gdpr rotate-kek"))
    p.set_defaults(handler=lambda a: service().vault.rotate())

    p = cmds.add_parser("export", help="everything held about a subject, as JSON (access, P3)",
                        epilog=examples("gdpr export C1 --operator alice --json"))
    subjects_arguments(p)
    operator_argument(p)
    p.add_argument("--purpose", choices=["access", "portability"], default="access",
                   help="access (P3, default) or portability, recorded in the access log")
    p.set_defaults(handler=export)

    p = cmds.add_parser("access-log", help="who decrypted a subject's personal data (R21)",
                        epilog=examples("gdpr access-log C1 --operator alice"))
    p.add_argument("subject_id", type=SUBJECT, help="a customer id or a subject pseudonym")
    operator_argument(p)
    p.set_defaults(
        handler=lambda a: Privacy(service()).access_log(
            a.subject_id, reader(a, "gdpr access-log", "access-log review")
        )
    )

    requests = cmds.add_parser("request", help="the register of rights requests (P1)")
    rcmds = requests.add_subparsers(dest="request_command", required=True, parser_class=Parser)
    p = rcmds.add_parser("open", help="register a request received on a date",
                         epilog=examples("gdpr request open --subject C1 --type erasure "
                                         "--received-on 2026-03-02 --request-id R1"))
    p.add_argument("--subject", required=True, type=SUBJECT,
                   help="a customer id or a subject pseudonym")
    p.add_argument("--type", required=True, choices=REQUEST_TYPES,
                   help=f"one of {', '.join(REQUEST_TYPES)}")
    p.add_argument("--received-on", required=True, type=parse_date,
                   help="day received, YYYY-MM-DD: the one-month deadline runs from it")
    p.add_argument("--request-id", type=parse_text(200), help="its id (default: a new one)")
    p.set_defaults(handler=open_request)

    p = rcmds.add_parser("extend", help="extend by 1 or 2 months (2 in total), with a reason",
                         epilog=examples("gdpr request extend R1 --months 1 "
                                         "--reason 'complex request'"))
    p.add_argument("request_id", type=parse_text(200), help=REQUEST_HELP)
    p.add_argument("--months", required=True, type=int, choices=[1, 2], help="1 or 2")
    p.add_argument("--reason", required=True, type=parse_text(500),
                   help="why, told to the subject (≤ 500 characters)")
    p.set_defaults(handler=lambda a: Privacy(service()).extend(a.request_id, a.months, a.reason))

    p = rcmds.add_parser("close", help="the answer was sent: the outcome and its operator "
                         "are recorded", epilog=examples("gdpr request close R1 --outcome "
                                                         "'export sent by e-mail'"))
    p.add_argument("request_id", type=parse_text(200), help=REQUEST_HELP)
    p.add_argument("--outcome", required=True, type=parse_text(500),
                   help="what was done or answered (≤ 500 characters, no personal data)")
    operator_argument(p)
    p.set_defaults(handler=lambda a: Privacy(service()).close(
        a.request_id, a.outcome, reader(a, "gdpr request close", "request closed")))

    p = rcmds.add_parser("list", help="requests with their due dates",
                         epilog=examples("gdpr request list --overdue --operator alice",
                                         "gdpr request list --due-within 7 --operator alice"))
    when = p.add_mutually_exclusive_group()
    when.add_argument("--overdue", action="store_true", help="open requests past their due date")
    when.add_argument("--due-within", type=parse_days, metavar="DAYS",
                      help="the warning list: open requests due within DAYS days (late included)")
    p.add_argument("--as-of", type=parse_date, help="day to judge overdue on, YYYY-MM-DD "
                   "(default: today)")
    operator_argument(p)
    p.set_defaults(handler=list_requests)


def parse_days(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 366:
        raise argparse.ArgumentTypeError("a number of days from 0 to 366")
    return int(text)


def register_operators(cmds: argparse._SubParsersAction[Any]) -> None:
    """`gdpr operator ...`: the register, changed only by an admin (the first one bootstraps
    with the service's secret alone); each command shows a new key once."""
    p = cmds.add_parser("operator", help="the register of operators: roles and keys (R21)")
    ocmds = p.add_subparsers(dest="operator_command", required=True, parser_class=Parser)
    roles = f"one of {', '.join(ROLES)}"
    p = ocmds.add_parser("add", help="register an operator; prints their key once (the first "
                         "one, an admin, needs only the service's secret)",
                         epilog=examples("gdpr operator add root --role admin",
                                         "gdpr operator add bob --role support"))
    p.add_argument("name", type=parse_text(100), help="the operator's name")
    p.add_argument("--role", required=True, choices=ROLES, help=roles)
    key_file_argument(p)
    operator_argument(p)
    p.set_defaults(handler=add_operator)
    p = ocmds.add_parser("role", help="change an operator's role (a new key, printed once)",
                         epilog=examples("gdpr operator role bob --role dpo"))
    p.add_argument("name", type=parse_text(100), help="the operator's name")
    p.add_argument("--role", required=True, choices=ROLES, help=roles)
    key_file_argument(p)
    operator_argument(p)
    p.set_defaults(handler=lambda a: shown(a, Operators(service().app).change_role(
        a.name, a.role, authenticated_operator(a, "gdpr operator role"))))
    for name, what in (("disable", "refuse the operator from now on (their key is revoked)"),
                       ("rekey", "a new key for the operator, printed once (the old one is "
                        "revoked; a disabled operator is enabled again)")):
        p = ocmds.add_parser(name, help=what, epilog=examples(f"gdpr operator {name} bob"))
        p.add_argument("name", type=parse_text(100), help="the operator's name")
        if name == "rekey":
            key_file_argument(p)
        operator_argument(p)
        p.set_defaults(handler=lambda a, verb=name: shown(a, getattr(
            Operators(service().app), verb)(a.name, authenticated_operator(
                a, f"gdpr operator {verb}"))))
    p = ocmds.add_parser("list", help="the operators, their roles and key ids",
                         epilog=examples("gdpr operator list --json"))
    operator_argument(p)
    p.set_defaults(handler=list_operators)


def add_operator(args: argparse.Namespace) -> dict[str, Any]:
    """The first operator of an empty register is created with the service's secret alone."""
    operators = Operators(service().app)
    empty = operators.register_of() is None
    bootstrap = empty and operator_key() is None and not args.break_glass
    actor = None if bootstrap else authenticated_operator(args, "gdpr operator add")
    return shown(args, operators.add(args.name, args.role, actor))


def key_file_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key-file", type=new_file, help="write the new key to this new file "
                   "(mode 0600) instead of printing it")


def new_file(text: str) -> Path:
    if Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text[:100]} exists: a key file is never overwritten")
    return Path(text)


def shown(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """The new key, printed once or written to --key-file (created 0600, never overwritten)."""
    path = getattr(args, "key_file", None)
    if path is None or "key" not in result:
        return result
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        # The register changed already: the key is shown rather than lost.
        return {**result, "key_file_error": f"{path}: {error.strerror}"}
    with os.fdopen(fd, "w") as handle:
        handle.write(result["key"] + "\n")
    return {**{k: v for k, v in result.items() if k not in ("key", "note")},
            "key_file": str(path)}


def list_operators(args: argparse.Namespace) -> dict[str, Any]:
    actor = authenticated_operator(args, "gdpr operator list")
    return {**Operators(service().app).list(), "by": actor.name}


def acting(args: argparse.Namespace, action: str) -> str:
    """The authenticated operator acting for a subject."""
    return authenticated_operator(args, action).name


def parse_pseudonym(text: str) -> str:
    if not re.fullmatch(r"(cus|ord)_[0-9a-f]{32}", text):
        raise argparse.ArgumentTypeError("a pseudonym is cus_ or ord_ and 32 hex digits")
    return text


def pseudonym(args: argparse.Namespace) -> dict[str, Any]:
    """P5/R21: the mapping between ids and their published pseudonyms, for customer service
    only (a registered operator, every id shown access-logged)."""
    case = f" for {args.request_id}" if args.request_id else ""
    access = reader(args, "gdpr pseudonym", f"pseudonym mapping{case}")
    privacy = Privacy(service())
    if args.resolve is not None:
        return privacy.resolve_pseudonym(args.resolve, access)
    return privacy.pseudonym_of(access, customer_id=args.customer_id, order_id=args.order_id)


def subjects_arguments(p: argparse.ArgumentParser) -> None:
    """One person may have several ids: a customer id, and recipient pseudonyms of emails."""
    p.add_argument("subject_ids", nargs="*", type=SUBJECT, metavar="SUBJECT_ID",
                   help="customer ids or subject pseudonyms (several: one person)")
    p.add_argument("--email", action="append", default=[], type=parse_text(320),
                   help="a recipient's e-mail, looked up as its pseudonym (repeatable)")


def subjects(args: argparse.Namespace) -> list[str]:
    found = list(dict.fromkeys(iter_subjects(args.subject_ids, args.email, service())))
    if not found:
        raise UsageError("give at least one SUBJECT_ID or --email")
    return found


def list_requests(args: argparse.Namespace) -> dict[str, Any]:
    return logged_read(
        args, "gdpr request list", "request register review",
        lambda: Privacy(service()).list_requests(
            overdue=args.overdue, as_of=args.as_of, due_within=args.due_within),
        lambda found: (r["subject_id"] for r in found["requests"]),
    )


def export(args: argparse.Namespace) -> dict[str, Any]:
    access = reader(args, "gdpr export", f"{args.purpose} request")
    return Privacy(service()).export(subjects(args), access, profiling=profiling_results)


def profiling_results(ids: list[str]) -> list[dict[str, Any]]:
    """The fraud alerts about the subject, with the rule and the facts behind each (art. 15)."""
    from entrypoints.cli.views import projector, refresh
    from projections.queries import alerts

    refresh()
    found: list[dict[str, Any]] = alerts(projector().db, customers=ids)["alerts"]
    return found


def purge(args: argparse.Namespace) -> dict[str, Any]:
    return run_purge(service())


def create_privacy_tables(settings: Settings) -> None:
    """`serve` creates them under the set-up lock, before its parts start."""
    svc = build(settings)
    try:
        Privacy(svc)
    finally:
        svc.close()


def run_purge(svc: Service) -> dict[str, Any]:
    """Retention: personal data past its period, pending erasures finished, then a KEK
    rotation when one is due (`gdpr purge`, and hourly in `serve`)."""
    privacy, settings = Privacy(svc), svc.settings
    report = privacy.purge(card_years=settings.retention_card_years)
    report["records"] = privacy.purge_records(
        access_log_days=settings.retention_access_log_days,
        request_years=settings.retention_request_years,
    )
    report["dead_letter_keys"] = privacy.purge_dead_letter_keys(
        days=settings.retention_dead_letter_days)
    views = build_projector(svc.settings)
    try:  # fraud data (profiling results, window state) past GIFTCARDS_RETENTION_FRAUD_YEARS
        cutoff = years_before(svc.app.now(), svc.settings.retention_fraud_years)
        report["fraud_data"] = purge_fraud_data(views.db, cutoff)
    finally:
        views.db.close()
    if svc.vault.kek_age_hours() >= svc.settings.kek_rotation_hours:
        report["kek_rotation"] = svc.vault.rotate()
    return report


def open_request(args: argparse.Namespace) -> dict[str, Any]:
    privacy = Privacy(service())
    return privacy.open_request(args.subject, args.type, args.received_on, args.request_id)
