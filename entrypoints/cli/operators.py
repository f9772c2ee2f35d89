"""R21 at the CLI: the operator checked against the register, and access-logged listings."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from application import privacy
from application.privacy import PiiReader
from entrypoints.cli.base import need_operator
from entrypoints.cli.cards import service


def reader(args: argparse.Namespace, purpose: str, command: str) -> PiiReader:
    """The checked operator (in the register) whose every access is logged."""
    return PiiReader(service(), need_operator(args), purpose, command)


def logged_read(
    args: argparse.Namespace, purpose: str, command: str,
    read: Callable[[], dict[str, Any]], subjects: Callable[[dict[str, Any]], Iterable[Any]],
) -> dict[str, Any]:
    """R21: `--operator` given, then checked and every subject shown logged."""
    return privacy.logged_read(service(), need_operator(args), purpose, command, read, subjects)
