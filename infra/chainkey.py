"""The chain key: the secret that seals each card event's chain link (HMAC), kept in a file
outside the database, apart from the signing key and the KEKs."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def load_chain_key(path: Path, *, create: bool) -> bytes:
    """The 32-byte key (hex) at `path`; created (mode 0600, atomically: processes starting
    together share one) with a warning when `create`."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no chain key at {path}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process made it first: theirs is kept
            print(f"warning: generated a chain key in {path}; back it up", file=sys.stderr)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise ValueError(f"{path} is not a hex chain key") from None
    if len(key) < 32:
        raise ValueError(f"{path} holds fewer than 32 bytes")
    return key
