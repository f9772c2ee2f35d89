"""R21 at the CLI: the operator checked against the register, and access-logged listings."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from application.privacy import PiiReader
from entrypoints.cli.base import UsageError, parse_text
from entrypoints.cli.cards import service


def operator_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--operator", type=parse_text(100), help="who reads the data (R21)")


def need_operator(args: argparse.Namespace) -> str:
    if not (args.operator or "").strip():
        raise UsageError("this command shows personal data: give --operator", "operator_required")
    return str(args.operator)


def reader(args: argparse.Namespace, purpose: str, command: str) -> PiiReader:
    """The checked operator (in the register) whose every access is logged."""
    return PiiReader(service(), need_operator(args), purpose, command)


def logged_read(
    args: argparse.Namespace, purpose: str, command: str,
    read: Callable[[], dict[str, Any]], subjects: Callable[[dict[str, Any]], Iterable[Any]],
) -> dict[str, Any]:
    """R21 (finding 9): a listing naming customers needs a registered operator (checked
    before reading) and each subject shown is access-logged before it is shown."""
    access = reader(args, purpose, command)
    found = read()
    for subject in dict.fromkeys(s for s in subjects(found) if s):
        access.note(str(subject), command.rsplit(" ", 1)[-1])
    access.flush()
    return found
