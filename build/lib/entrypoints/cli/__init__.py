"""The `giftcards` command line: thin entrypoints that decode, call the application, encode."""

from __future__ import annotations

import sys

from entrypoints.cli.main import run


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)
