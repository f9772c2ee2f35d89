"""The master key (read, or generated outside production, and checked for entropy) and where
the chain key lives."""

from __future__ import annotations

import math
import secrets
import sys
from collections import Counter
from pathlib import Path

from infra.config_values import ConfigError
from infra.private_files import create_private_file

# A production key must carry at least this much entropy, estimated from its own characters.
MIN_KEY_BITS = 128
KEY_HOWTO = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def chain_key_file(env: dict[str, str]) -> Path:
    """GIFTCARDS_CHAIN_KEY_FILE, else (outside production) the user's configuration directory:
    never the data directory, so a copy of the database and its directory cannot forge."""
    given = env.get("GIFTCARDS_CHAIN_KEY_FILE")
    if given:
        return Path(given)
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "giftcards" / "chain.key"


def master_key(env: dict[str, str], mode: str, data_dir: Path) -> bytes:
    given = env.get("GIFTCARDS_SECRET_KEY")
    if given:
        if len(given) < 32:
            raise ConfigError(f"GIFTCARDS_SECRET_KEY must be at least 32 characters; {KEY_HOWTO}")
        if mode == "production" and estimated_bits(given) < MIN_KEY_BITS:
            raise ConfigError(
                f"GIFTCARDS_SECRET_KEY looks guessable (under {MIN_KEY_BITS} bits of entropy "
                f"estimated from its characters); {KEY_HOWTO}"
            )
        return given.encode()
    if mode == "production":
        raise ConfigError("GIFTCARDS_SECRET_KEY is required in production")
    path = data_dir / "dev-secret.key"
    # Processes starting together share the first key linked into place.
    if not path.exists() and create_private_file(path, secrets.token_urlsafe(48).encode()):
        print(
            f"warning: GIFTCARDS_SECRET_KEY unset; generated a development key in {path}",
            file=sys.stderr,
        )
    return path.read_text().strip().encode()


def estimated_bits(key: str) -> float:
    """Length × the Shannon entropy of the key's own character frequencies, over its shortest
    repeating unit: 32 spaces or 32 × 'a' give 0, `"0123456789abcdef" * 2` 64 bits,
    `secrets.token_urlsafe(48)` ~330. An upper bound for keys made by people (a sentence
    scores high too): it catches the careless, it does not certify the random."""
    unit = key[: _period(key)]
    counts = Counter(unit)
    return sum(n * math.log2(len(unit) / n) for n in counts.values())


def _period(text: str) -> int:
    """The length of the shortest prefix that `text` repeats (len(text) if none)."""
    for size in range(1, len(text)):
        if all(text[i] == text[i % size] for i in range(size, len(text))):
            return size
    return len(text)
