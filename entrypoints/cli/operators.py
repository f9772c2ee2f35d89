"""R21 at the CLI: who runs a command, proven by their key (or break-glass), and logged reads."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from application import privacy_reads
from application.operators import Actor, Operators, break_glass, check_allowed
from application.privacy_reads import PiiReader
from domain.errors import refuse
from entrypoints.cli.base import UsageError, parse_text
from entrypoints.cli.context import service

T = TypeVar("T")

log = logging.getLogger("giftcards.operators")
KEY_VARIABLE = "GIFTCARDS_OPERATOR_KEY"
KEY_FILE_VARIABLE = "GIFTCARDS_OPERATOR_KEY_FILE"
HOW = (f"set {KEY_FILE_VARIABLE} (a file of mode 0600 holding your operator key) or "
       f"{KEY_VARIABLE}; with the service's secret alone, --break-glass (logged as such)")


def operator_argument(p: argparse.ArgumentParser) -> None:
    """The options of every operator command; the proof is the key, never an argument."""
    p.add_argument("--operator", type=parse_text(100),
                   help=f"your name, checked against your key (R21): {HOW}")
    p.add_argument("--break-glass", action="store_true",
                   help="act with the service's secret alone, no operator key: every right, "
                   "logged as break-glass with your Unix user")


def operator_key() -> str | None:
    """The operator's key from the environment or a file: never an argument (visible in ps)."""
    path = os.environ.get(KEY_FILE_VARIABLE)
    if path:
        file = Path(path)
        try:
            if file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise UsageError(f"{KEY_FILE_VARIABLE}: {path} is readable by others; "
                                 "chmod 600 it", "invalid_configuration")
            return file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise UsageError(f"{KEY_FILE_VARIABLE}: cannot read {path} "
                             f"({type(error).__name__})", "invalid_configuration") from None
    return os.environ.get(KEY_VARIABLE) or None


def unix_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def authenticated_operator(args: argparse.Namespace, action: str) -> Actor:
    """The one way a command learns who runs it: the operator whose key verifies against the
    register (a typed `--operator` must be that name), or break-glass; then the role's right
    to `action` (application.operators.PERMISSIONS) is checked."""
    key = operator_key()
    typed = getattr(args, "operator", None)
    if key is not None:
        actor = Operators(service().app).authenticate(key)
        if typed and typed != actor.name:
            raise refuse("operator_mismatch", "--operator is not the operator of this key")
    elif getattr(args, "break_glass", False):
        actor = break_glass(unix_user())
        if typed:
            raise refuse("operator_mismatch", "--break-glass acts as the Unix user, not --operator")
        log.warning("break-glass: %s runs %s with the service's secret", actor.name, action)
    elif typed:
        # A typed name is not proof: an unregistered one is refused as such, a registered one
        # for lack of its key.
        if not Operators(service().app).is_registered(typed):
            raise refuse("unknown_operator", "this operator is not in the register of operators")
        raise refuse("operator_key_required", f"a typed name is not proof: {HOW}")
    else:
        raise UsageError(f"this command needs an operator: {HOW}", "operator_required")
    return check_allowed(actor, action)


def reader(args: argparse.Namespace, action: str, purpose: str) -> PiiReader:
    """The authenticated operator, whose every access is logged under `action`."""
    return PiiReader(service(), authenticated_operator(args, action).name, purpose, action)


def logged_read(
    args: argparse.Namespace, action: str, purpose: str,
    read: Callable[[], T], subjects: Callable[[T], Iterable[Any]],
) -> T:
    """R21: the operator authenticated first, then every subject shown logged."""
    actor = authenticated_operator(args, action)
    return privacy_reads.logged_read(service(), actor.name, purpose, action, read, subjects)
