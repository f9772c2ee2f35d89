"""CLI plumbing shared by every command: parsing, JSON/human output, exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NoReturn

import orjson

from domain import calendar

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
        return calendar.parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text[:40]!r}") from None


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
