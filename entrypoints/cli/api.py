"""`api` (the HTTP API on uvicorn, alone) and `api-key create|list|revoke`."""

from __future__ import annotations

import argparse
import threading
import uuid
from typing import Any

from composition.bootstrap import set_up_schema
from entrypoints.cli.api_parts import (
    add_api_options,
    api_part,
    serve_processes,
    sweep_part,
    with_console,
)
from entrypoints.cli.base import UsageError, examples, parse_text
from entrypoints.cli.cards import service
from infra.config import load_settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("api", help="the HTTP API (until SIGTERM)",
                       epilog=examples("api --host 127.0.0.1 --port 8080",
                                       "api --port 8080 --processes 2"))
    add_api_options(p)
    p.set_defaults(handler=api)

    p = sub.add_parser("console", help="the operators' console and the HTTP API (until SIGTERM)",
                       epilog=examples("console --port 8080"))
    add_api_options(p)
    p.set_defaults(handler=console)

    p = sub.add_parser("api-key", help="API keys of the HTTP API")
    keys = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    c = keys.add_parser("create", help="a new key, printed once",
                        epilog=examples("api-key create --name shop --scope checkout "
                                        "--scope orders"))
    c.add_argument("--name", required=True, type=parse_text(100),
                   help="who uses the key (e.g. the shop)")
    c.add_argument("--scope", action="append", required=True,
                   choices=["checkout", "orders", "support", "audit"],
                   help="what the key may call (repeatable): checkout (lookup, authorize, "
                   "capture, void), orders (purchase, refund), support, audit")
    c.set_defaults(handler=create_key)
    keys.add_parser("list", help="every key (never the key itself)",
                    epilog=examples("api-key list --json")).set_defaults(
        handler=list_keys
    )
    r = keys.add_parser("revoke", help="refuse a key from now on",
                        epilog=examples("api-key revoke 5f0c2f7e-1d4e-4a57-9d0a-0b4b3c2d1e0f"))
    r.add_argument("key_id", type=key_id, help="the key's id (UUID, from `api-key list`)")
    r.set_defaults(handler=revoke_key)


def key_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a key id (expected a UUID)") from None


def create_key(args: argparse.Namespace) -> dict[str, Any]:
    from application.apikeys import ApiKeys

    return ApiKeys(service().app).create(name=args.name, scopes=args.scope)


def list_keys(args: argparse.Namespace) -> dict[str, Any]:
    from application.apikeys import ApiKeys

    return ApiKeys(service().app).list()


def revoke_key(args: argparse.Namespace) -> dict[str, Any]:
    from application.apikeys import ApiKeys

    return ApiKeys(service().app).revoke(args.key_id)


def console(args: argparse.Namespace) -> dict[str, Any]:
    """`api --console`: the pages for customer service and auditors on the API's app."""
    args.console = True
    return api(args)


def api(args: argparse.Namespace) -> dict[str, Any]:
    from entrypoints.cli.kafka_setup import stop_on_sigterm
    from infra.supervisor import retry_until_done, run_parts

    if not 0 < args.port < 65536:
        raise UsageError("--port must be 1 to 65535")
    if not 0 < args.processes <= 64:
        raise UsageError("--processes must be 1 to 64")
    settings = with_console(load_settings(), args)
    if args.processes > 1 and settings.console:
        raise UsageError("the console keeps its sessions in its process: --processes 1")
    if args.processes > 1 and settings.database_url.startswith(("sqlite", "memory")):
        raise UsageError("--processes above 1 needs PostgreSQL (GIFTCARDS_DATABASE_URL)")
    stop = stop_on_sigterm()
    # A database that is away or full (too many clients) is waited for, as by `serve`.
    if not retry_until_done(stop, "the database schema", lambda: set_up_schema(settings)):
        return {"stopped": "api"}
    if args.processes == 1:
        run_parts({"api": api_part(settings, args.host, args.port, args.workers),
                   "holds": sweep_part(settings)}, stop)
        return {"stopped": "api"}
    # The sweep once, here; the API in worker processes under uvicorn's supervisor, which
    # takes SIGTERM over from here on and returns once they all stopped.
    sweep = threading.Thread(target=run_parts, args=({"holds": sweep_part(settings)}, stop),
                             name="holds", daemon=True)
    sweep.start()
    try:
        serve_processes(args.host, args.port, args.processes)
    finally:
        stop.set()
        sweep.join(60)
    return {"stopped": "api", "processes": args.processes}
