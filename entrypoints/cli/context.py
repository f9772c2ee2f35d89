"""The one service of a CLI process, built on first use (every command group's)."""

from __future__ import annotations

from functools import cache

from composition.bootstrap import Service, build


@cache
def service() -> Service:
    """One service per CLI process, built on first use."""
    return build()
