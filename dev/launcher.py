"""The `up|down|status` command line shared by the dev service launchers (Kafka, PostgreSQL)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_command(
    command: str, up: Callable[[], str], down: Callable[[], None], status: Callable[[], str | None]
) -> int:
    """Exit 0 done, 1 failed (message on stderr), 3 `status` of a stopped service."""
    try:
        if command == "up":
            print(up())
        elif command == "down":
            down()
            print("stopped")
        else:
            running = status()
            print(f"running {running}" if running else "stopped")
            return 0 if running else 3
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
