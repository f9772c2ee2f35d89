"""The HTTP API's parts of a process (uvicorn, the hold sweep), for `api` and `serve`."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from composition.bootstrap import build
from entrypoints.cli.base import UsageError, parse_text
from infra.config import Settings, load_settings
from infra.supervisor import Part

log = logging.getLogger("giftcards.api")
SWEEP_SECONDS = 30.0


def add_api_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}host", default="127.0.0.1", type=parse_text(100),
                   help="address to listen on (default 127.0.0.1)")
    # In `serve` the API runs only with --api-port: many serve processes share test machines.
    p.add_argument(f"--{prefix}port", default=None if prefix else 8080, type=int,
                   help="TCP port (api: default 8080; serve: the API runs only when given)")
    p.add_argument(f"--{prefix}workers", default=16, type=int,
                   help="threads running commands on PostgreSQL (SQLite: one)")
    p.add_argument("--console", action="store_true",
                   help="also the operators' console under /console/ (GIFTCARDS_CONSOLE=on)")
    if not prefix:  # `serve` runs the API in one of its threads
        p.add_argument("--processes", default=1, type=int,
                       help="API processes sharing the port (PostgreSQL; default 1): one per "
                       "core. Each has its own /metrics and the default 16 threads")


def with_console(settings: Settings, args: argparse.Namespace) -> Settings:
    """`--console` turns the console on whatever GIFTCARDS_CONSOLE says."""
    return settings.model_copy(update={"console": True}) if args.console else settings


def limited(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the HTTP limits (the protocol of entrypoints.http.protocol)."""
    from entrypoints.http.protocol import Limits, limited_protocol

    return {"http": limited_protocol(Limits.of(settings)),
            "timeout_keep_alive": settings.http_keep_alive_seconds}


def api_part(settings: Settings, host: str, port: int, workers: int) -> Part:
    """uvicorn in this thread; `stop` ends it (uvicorn installs signal handlers only in the
    main thread, which keeps the process's own)."""

    def run(stop: threading.Event) -> None:
        import uvicorn

        from entrypoints.http.asgi import service_app

        svc, app = service_app(settings, workers)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="on", **limited(settings))
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


def serve_processes(host: str, port: int, processes: int) -> None:
    """uvicorn's own supervisor: `processes` workers on one listening socket (the kernel shares
    the connections out), each restarted if it dies; SIGTERM stops them all. Every worker
    builds its app from the environment (entrypoints.http.asgi); run from the main thread."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = load_settings()

    config = uvicorn.Config("entrypoints.http.asgi:app_from_environment", factory=True,
                            host=host, port=port, workers=processes, log_level="warning",
                            access_log=False, lifespan="on", **limited(settings))
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn logged why (address in use, no such address)
        raise UsageError(f"the API could not listen on {host}:{port}") from None
    log.info("api: %d processes listening on %s:%d", processes, host, port)
    Multiprocess(config, sockets=[sock]).run()


def sweep_part(settings: Settings) -> Part:
    """Holds past their time released every SWEEP_SECONDS (they are also released on access)."""

    def run(stop: threading.Event) -> None:
        from application.holds import Holds

        svc = build(settings, create_tables=False)
        holds = Holds(svc.app, hold_seconds=settings.hold_seconds)
        try:
            while not stop.is_set():
                released = holds.release_timed_out().released
                if released:
                    log.info("holds: %d timed out and released", released)
                stop.wait(SWEEP_SECONDS)
        finally:
            svc.close()

    return run
