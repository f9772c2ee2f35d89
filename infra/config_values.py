"""Reading one environment variable: an integer, seconds, a switch, a choice, a pattern, a file."""

from __future__ import annotations

import re
from pathlib import Path


class ConfigError(Exception):
    """The environment is unusable; the message says which variable and why."""


def readable(env: dict[str, str], name: str) -> Path | None:
    """A file setting: unset is None; set, it must be a readable file now, not at first use."""
    value = env.get(name)
    if not value:
        return None
    path = Path(value)
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ConfigError(
            f"{name} is not a readable file: {value[:200]} ({error.strerror})"
        ) from None
    return path


def matching(
    env: dict[str, str], name: str, default: str, form: re.Pattern[str], what: str
) -> str:
    value = env.get(name) or default
    if not form.fullmatch(value):
        raise ConfigError(f"{name} must be {what}, not {value[:60]!r}")
    return value


def switch(env: dict[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("0", "1", "true", "false", "on", "off"):
        raise ConfigError(f"{name} must be on or off")
    return value in ("1", "true", "on")


def choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or allowed[0]
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value[:40]!r}")
    return value


def integer(env: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


def seconds(env: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if not 0 <= value <= 3600:
        raise ConfigError(f"{name} must be between 0 and 3600 seconds")
    return value
