"""CLI plumbing shared by every command: parsing, JSON/human output, exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NoReturn

import orjson

from domain.errors import DomainError
from infra.config import ConfigError
from infra.runtime import tune_gc

EXIT_OK, EXIT_REFUSED, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3
# Refusals that are about the shape of the input rather than the terms.
INPUT_ERROR_CODES = {"invalid_amount", "invalid_input", "invalid_date", "unknown_option"}

Handler = Callable[[argparse.Namespace], dict[str, Any]]


class UsageError(Exception):
    """Invalid command line; exit 2."""

    def __init__(self, message: str, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.code = code


class HelpRequested(Exception):
    """`-h`/`--help` was given; exit 0 with the help text (as JSON under `--json`)."""


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # `--mark` silently meaning `--market` is a trap for scripts: options are spelled out.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def print_help(self, file: Any = None) -> None:
        # argparse would print then sys.exit(0), bypassing the one-JSON-object contract.
        raise HelpRequested(self.format_help())


def parse_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text[:40]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text[:40]!r}") from None


def parse_text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"at most {limit} characters")
        if not text.isprintable() and not all(ch.isprintable() or ch in "\n\t" for ch in text):
            raise argparse.ArgumentTypeError("control characters are not allowed")
        return text

    return parse


def build_parser() -> Parser:
    from entrypoints.cli import commands

    parser = Parser(prog="giftcards", description="Gift card lifecycle service")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.register(sub)
    return parser


def emit(payload: dict[str, Any], as_json: bool, stream: Any = None) -> None:
    out = stream or sys.stdout
    if as_json:
        out.write(orjson.dumps(payload).decode() + "\n")
        return
    for key, value in payload.items():
        if isinstance(value, dict | list):
            value = orjson.dumps(value).decode()
        out.write(f"{key}: {value}\n")


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _closed_transport_read(record: logging.LogRecord) -> bool:
    """Drop kafka-python 3.0.12's report of a read on a transport it closed itself on shutdown
    (its read loop wakes after close() set the socket to None): an ERROR with a traceback on
    every clean stop, about nothing lost. Any other transport error is still logged."""
    error = record.exc_info[1] if record.exc_info else None
    closed = "'NoneType' object has no attribute 'recv'"
    return not (isinstance(error, AttributeError) and closed in str(error))


def run(argv: list[str]) -> int:
    as_json = "--json" in argv
    argv = [a for a in argv if a != "--json"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka.net.transport").addFilter(_closed_transport_read)
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
    except ConfigError as exc:
        return _fail(as_json, "invalid_configuration", str(exc), EXIT_INVALID)
    except DomainError as exc:
        status = EXIT_INVALID if exc.code in INPUT_ERROR_CODES else EXIT_REFUSED
        return _fail(as_json, exc.code, exc.message, status)
    except KeyboardInterrupt:
        return _fail(as_json, "interrupted", "interrupted", EXIT_INTERNAL)
    except Exception as exc:  # the last line of defence: no traceback for the user
        logging.getLogger("giftcards").debug("internal error", exc_info=True)
        from infra.transient import is_transient  # psycopg: only when something failed

        if is_transient(exc):  # nothing was half written: the same command can be run again
            message = "the database is unavailable; run the command again"
            return _fail(as_json, "database_unavailable", message, EXIT_INTERNAL)
        return _fail(as_json, "internal_error", type(exc).__name__, EXIT_INTERNAL)
    if result is not None:  # None: the handler wrote its own output (e.g. an export)
        emit(result, as_json)
    return EXIT_OK


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
