"""The `giftcards` command: the parser of every command group, and the one exit-code policy."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from urllib.parse import urlsplit

from domain.errors import DomainError
from entrypoints.cli import commands
from entrypoints.cli.base import (
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REFUSED,
    INPUT_ERROR_CODES,
    HelpRequested,
    Parser,
    UsageError,
    _closed_socket_unregistered,
    _closed_transport_read,
    emit,
    error,
)
from infra import logs
from infra.config import ConfigError, log_format
from infra.runtime import tune_gc


def build_parser() -> Parser:
    parser = Parser(
        prog="giftcards",
        description="Gift card lifecycle service. Amounts on the command line are decimals in "
        "the market's major units (50 or 50.00); in JSON output they are integer minor units "
        "plus `currency`.",
        epilog="exit codes: 0 done, 1 a rule refused it, 2 invalid input or configuration, "
        "3 internal error (a database or broker that does not answer is named)\n"
        "example:\n  giftcards purchase --market FR --amount 50 --payment-method card "
        "--buyer-id C1 --json",
    )
    parser.add_argument("--json", action="store_true",
                        help="print exactly one JSON object (also after the subcommand)")
    parser.add_argument("--verbose", action="store_true",
                        help="show third-party libraries' INFO logs (kafka-python's connections "
                        "and group joins), off by default")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.register(sub)
    return parser


def run(argv: list[str]) -> int:
    try:
        status = _run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`giftcards … | head`): nothing more to say, and no traceback
        # when the interpreter flushes stdout on its way out.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return status


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as other Unix tools end in a closed pipe


def _run(argv: list[str]) -> int:
    as_json = "--json" in argv
    verbose = "--verbose" in argv
    argv = [a for a in argv if a not in ("--json", "--verbose")]
    try:
        fmt = log_format()
    except ConfigError as exc:
        logs.configure()
        return _fail(as_json, "invalid_configuration", str(exc), EXIT_INVALID)
    logs.configure(fmt)
    if verbose:
        logging.getLogger("kafka").setLevel(logging.INFO)
    logging.getLogger("kafka.net.transport").addFilter(_closed_transport_read)
    logging.getLogger("kafka.net.selector").addFilter(_closed_socket_unregistered)
    tune_gc()
    try:
        if any(_has_surrogates(a) for a in argv):
            raise UsageError("arguments must be valid UTF-8")
        args = build_parser().parse_args(argv)
        args.json = as_json
        result = args.handler(args)
    except HelpRequested as shown:
        emit({"help": str(shown)}, as_json) if as_json else sys.stdout.write(str(shown))
        return EXIT_OK
    except UsageError as exc:
        return _fail(as_json, exc.code, str(exc), EXIT_INVALID)
    except ConfigError as exc:  # a subclass may name its own code (a topic contract refused)
        code = getattr(exc, "code", "invalid_configuration")
        return _fail(as_json, code, str(exc), EXIT_INVALID)
    except DomainError as exc:
        status = EXIT_INVALID if exc.code in INPUT_ERROR_CODES else EXIT_REFUSED
        return _fail(as_json, exc.code, exc.message, status)
    except KeyboardInterrupt:
        return _fail(as_json, "interrupted", "interrupted", EXIT_INTERNAL)
    except Exception as exc:  # the last line of defence: no traceback for the user
        # Where it broke, for the operator: frames only, never the message (a database's
        # message can quote the values of a row).
        logging.getLogger("giftcards").error("internal error %s at %s", type(exc).__name__,
                                             _frames(exc))
        from infra.transient import is_transient, refused_login  # psycopg: only on a failure

        if reason := refused_login(exc):  # a setting to fix: credentials, certificate, TLS
            message = (f"GIFTCARDS_DATABASE_URL: the database at {_database()} refused the "
                       f"connection: {reason}")
            return _fail(as_json, "invalid_configuration", message, EXIT_INVALID)
        if is_transient(exc):  # nothing was half written: the same command can be run again
            message = f"the database at {_database()} is unavailable; run the command again"
            return _fail(as_json, "database_unavailable", message, EXIT_INTERNAL)
        if type(exc).__module__.split(".")[0] == "kafka":
            message = (f"Kafka at {os.environ.get('KAFKA_BOOTSTRAP_SERVERS')} did not answer "
                       f"({type(exc).__name__}); check KAFKA_BOOTSTRAP_SERVERS and the broker")
            return _fail(as_json, "kafka_unavailable", message, EXIT_INTERNAL)
        return _fail(as_json, "internal_error", type(exc).__name__, EXIT_INTERNAL)
    if result is not None:  # None: the handler wrote its own output (e.g. an export)
        emit(result, as_json)
    return EXIT_OK


def _database() -> str:
    """host:port of GIFTCARDS_DATABASE_URL (never its user or password), or the SQLite file."""
    from infra.config import load_settings
    from infra.db import describe_hosts

    database_url = load_settings().database_url
    url = urlsplit(database_url)
    if url.scheme == "sqlite":
        return url.path.removeprefix("/") or "(memory)"
    return describe_hosts(database_url)


def _frames(exc: BaseException, last: int = 8) -> str:
    """The innermost frames of `exc`'s traceback, innermost first: `path:line function`."""
    frames = traceback.extract_tb(exc.__traceback__)[-last:]
    return " < ".join(f"{_short(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))


def _short(path: str) -> str:
    """A frame's file from the project's or the libraries' root: no host paths in the log."""
    for root in ("site-packages/", _ROOT):  # a virtualenv may sit inside the project
        if root in path:
            return path[path.index(root) + len(root):]
    return os.path.basename(path)


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def _fail(as_json: bool, code: str, message: str, status: int) -> int:
    payload = error(code, message)
    if as_json:
        emit(payload, True)
    else:
        sys.stderr.write(f"error [{code}]: {message}\n")
    return status


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
