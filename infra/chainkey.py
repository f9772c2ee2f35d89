"""The chain key: the secret that seals each card event's chain link (HMAC), kept in a file
outside the database, apart from the signing key and the KEKs."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from infra.private_files import create_private_file


def load_chain_key(path: Path, *, create: bool) -> bytes:
    """The 32-byte key (hex) at `path`; created (mode 0600, atomically: processes starting
    together share one) with a warning when `create`."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no chain key at {path}")
        if create_private_file(path, (secrets.token_hex(32) + "\n").encode()):
            print(f"warning: generated a chain key in {path}; back it up", file=sys.stderr)
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise ValueError(f"{path} is not a hex chain key") from None
    if len(key) < 32:
        raise ValueError(f"{path} holds fewer than 32 bytes")
    return key
