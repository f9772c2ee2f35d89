"""CLI plumbing shared by every command: parsing, JSON/human output, exit codes."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from typing import Any, NoReturn

import orjson

from domain import calendar
from domain.errors import DomainError
from domain.ids import check_id

EXIT_OK, EXIT_REFUSED, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3
# Refusals that are about the shape of the input rather than the terms.
INPUT_ERROR_CODES = {
    "invalid_amount", "invalid_input", "invalid_id", "invalid_date", "unknown_option"}

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
        # Epilogs hold examples: their line breaks are kept.
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def print_help(self, file: Any = None) -> None:
        # argparse would print then sys.exit(0), bypassing the one-JSON-object contract.
        raise HelpRequested(self.format_help())


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines as written."""


# The accepted forms, strictly: Python's fromisoformat alone also takes `20260110`, `2026-W02`
# or a lone hour, which a typo should not turn into another instant.
INSTANT_FORM = ("YYYY-MM-DDTHH:MM[:SS[.ffffff]] with Z or +HH:MM (no offset = UTC), "
                "e.g. 2026-05-01T00:00:00Z")
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def parse_instant(text: str) -> datetime:
    try:
        if not _INSTANT.fullmatch(text):
            raise ValueError(text)
        return calendar.parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an instant: {text[:40]!r}; expected {INSTANT_FORM}"
        ) from None


def parse_date(text: str) -> date:
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text[:40]!r}; expected YYYY-MM-DD, e.g. 2026-03-02"
        ) from None


def parse_month(text: str) -> str:
    if not _MONTH.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"not a month: {text[:20]!r}; expected YYYY-MM, e.g. 2026-05"
        )
    return text


@cache
def market_codes() -> tuple[str, ...]:
    """The configured markets (GIFTCARDS_MARKETS_FILE), read once per process."""
    from composition.bootstrap import load_markets
    from infra.config import load_settings

    return tuple(load_markets(load_settings()).markets)


def parse_market(text: str) -> str:
    """A market in any case (`fr` is `FR`); an unknown one is refused with the list."""
    code = text.strip().upper()
    if code not in market_codes():
        raise argparse.ArgumentTypeError(
            f"unknown market {text[:10]!r}; expected one of {', '.join(market_codes())}"
        )
    return code


def examples(*lines: str) -> str:
    """A command's epilog: examples, one command per line."""
    return "examples:\n" + "\n".join(f"  giftcards {line}" for line in lines)


def parse_text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"at most {limit} characters")
        if not text.isprintable() and not all(ch.isprintable() or ch in "\n\t" for ch in text):
            raise argparse.ArgumentTypeError("control characters are not allowed")
        return text

    return parse


def parse_id(field: str) -> Callable[[str], str]:
    """An id argument, checked as on every path (domain.ids): refused `invalid_id`, exit 2."""
    def parse(text: str) -> str:
        try:
            return check_id(field, text)
        except DomainError as refusal:
            raise UsageError(refusal.message, refusal.code) from None

    return parse


def emit(payload: dict[str, Any], as_json: bool, stream: Any = None) -> None:
    out = stream or sys.stdout
    if as_json:
        out.write(orjson.dumps(payload).decode() + "\n")
        return
    from entrypoints.cli.present import human  # rich and Babel: only for people

    human(payload, out)


def emit_and_exit(result: dict[str, Any], as_json: bool) -> NoReturn:
    """The refusal printed as any answer, then the refused exit code."""
    emit(result, as_json)
    sys.stdout.flush()
    raise SystemExit(EXIT_REFUSED)


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _closed_transport_read(record: logging.LogRecord) -> bool:
    """Drop kafka-python 3.0.12's report of a read on a transport it closed itself on shutdown
    (its read loop wakes after close() set the socket to None): an ERROR with a traceback on
    every clean stop, about nothing lost. Any other transport error is still logged."""
    error = record.exc_info[1] if record.exc_info else None
    closed = "'NoneType' object has no attribute 'recv'"
    return not (isinstance(error, AttributeError) and closed in str(error))


def _closed_socket_unregistered(record: logging.LogRecord) -> bool:
    """Drop kafka-python 3.0.12's report of a task that unregistered a socket it had already
    closed (an ssl socket, fd -1: the selector answers "not registered", then "Invalid file
    descriptor: -1"): an ERROR with a traceback on a clean stop over TLS, about nothing lost.
    Any other error of its tasks is still logged."""
    error = record.exc_info[1] if record.exc_info else None
    seen = [error, getattr(error, "__context__", None)]
    return not any(
        (isinstance(e, KeyError) and "[closed] fd=-1" in str(e) and "is not registered" in str(e))
        or (isinstance(e, ValueError) and str(e) == "Invalid file descriptor: -1")
        for e in seen)
