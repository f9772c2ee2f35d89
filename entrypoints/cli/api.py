"""`api` (the HTTP API on uvicorn), `api-key create|list|revoke`, and the parts `serve` runs."""

from __future__ import annotations

import argparse
import logging
import threading
import uuid
from typing import Any

from entrypoints.cli.base import UsageError, parse_text
from entrypoints.cli.cards import service
from infra.bootstrap import build, set_up_schema
from infra.config import Settings, load_settings
from infra.supervisor import Part

log = logging.getLogger("giftcards.api")
SWEEP_SECONDS = 30.0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("api", help="the HTTP API (until SIGTERM)")
    add_api_options(p)
    p.set_defaults(handler=api)

    p = sub.add_parser("api-key", help="API keys of the HTTP API")
    keys = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    c = keys.add_parser("create", help="a new key, printed once")
    c.add_argument("--name", required=True, type=parse_text(100))
    c.add_argument("--scope", action="append", required=True,
                   choices=["checkout", "orders", "support", "audit"])
    c.set_defaults(handler=create_key)
    keys.add_parser("list", help="every key (never the key itself)").set_defaults(
        handler=list_keys
    )
    r = keys.add_parser("revoke", help="refuse a key from now on")
    r.add_argument("key_id", type=key_id)
    r.set_defaults(handler=revoke_key)


def add_api_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}host", default="127.0.0.1", type=parse_text(100))
    # In `serve` the API runs only with --api-port: many serve processes share test machines.
    p.add_argument(f"--{prefix}port", default=None if prefix else 8080, type=int)
    p.add_argument(f"--{prefix}workers", default=16, type=int,
                   help="threads running commands on PostgreSQL (SQLite: one)")


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


def api(args: argparse.Namespace) -> dict[str, Any]:
    from entrypoints.cli.consume import stop_on_sigterm
    from infra.supervisor import run_parts

    if not 0 < args.port < 65536:
        raise UsageError("--port must be 1 to 65535")
    settings = load_settings()
    set_up_schema(settings)
    stop = stop_on_sigterm()
    run_parts({"api": api_part(settings, args.host, args.port, args.workers),
               "holds": sweep_part(settings)}, stop)
    return {"stopped": "api"}


def api_part(settings: Settings, host: str, port: int, workers: int) -> Part:
    """uvicorn in this thread; `stop` ends it (uvicorn installs signal handlers only in the
    main thread, which keeps the process's own)."""

    def run(stop: threading.Event) -> None:
        import uvicorn

        from entrypoints.http.app import create_app

        svc = build(settings, create_tables=False)
        app = create_app(svc, hold_seconds=settings.hold_seconds, workers=workers)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")
        server = uvicorn.Server(config)

        def exit_on_stop() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=exit_on_stop, daemon=True).start()
        log.info("api: listening on %s:%d", host, port)
        try:
            server.run()
        except SystemExit:  # uvicorn exits when it cannot bind: restart with backoff instead
            raise RuntimeError(f"the API could not listen on {host}:{port}") from None
        finally:
            svc.close()

    return run


def sweep_part(settings: Settings) -> Part:
    """Holds past their time released every SWEEP_SECONDS (they are also released on access)."""

    def run(stop: threading.Event) -> None:
        from application.holds import Holds

        svc = build(settings, create_tables=False)
        holds = Holds(svc.app, hold_seconds=settings.hold_seconds)
        try:
            while not stop.is_set():
                released = holds.release_timed_out()["released"]
                if released:
                    log.info("holds: %d timed out and released", released)
                stop.wait(SWEEP_SECONDS)
        finally:
            svc.close()

    return run
