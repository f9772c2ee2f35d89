"""Registry of command groups: each module adds its subcommands to the parser."""

from __future__ import annotations

import argparse
from typing import Any

from entrypoints.cli import api, audit, cards, consume, deliveries, gdpr, relay, status, views

GROUPS = [cards, gdpr, consume, relay, status, views, audit, deliveries, api]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    for group in GROUPS:
        group.register(sub)
