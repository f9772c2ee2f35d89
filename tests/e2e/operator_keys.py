"""Operators' keys for CLI tests: enrolled once per store, passed the way people pass them (an
environment variable, never an argument)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

KEY = "GIFTCARDS_OPERATOR_KEY"
KEYS: dict[tuple[str, str], str] = {}
Run = Callable[..., tuple[int, dict[str, Any]]]


def store_of(env: dict[str, str]) -> str:
    return env.get("GIFTCARDS_DATABASE_URL") or env["GIFTCARDS_DATA_DIR"]


def enrol(run: Run, env: dict[str, str], name: str, role: str) -> str:
    """The operator's key; the store's first enrolment bootstraps `root`, its admin, with the
    service's secret alone, whose key then adds the others."""
    store = store_of(env)
    if (store, "root") not in KEYS:
        status, root = run({k: v for k, v in env.items() if k != KEY},
                           "gdpr", "operator", "add", "root", "--role", "admin")
        assert status == 0, root
        KEYS[(store, "root")] = root["key"]
    if name != "root":
        status, added = run({**env, KEY: KEYS[(store, "root")]},
                            "gdpr", "operator", "add", name, "--role", role)
        assert status == 0, added
        KEYS[(store, name)] = added["key"]
    return KEYS[(store, name)]


def with_key(env: dict[str, str], args: tuple[str, ...]) -> dict[str, str]:
    """The env of a run: an enrolled `--operator NAME` gets their key, as they would set it."""
    if "--operator" in args:
        name = args[args.index("--operator") + 1]
        key = KEYS.get((store_of(env), name))
        if key is not None:
            return {**env, KEY: key}
    return env
