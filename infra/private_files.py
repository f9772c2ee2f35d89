"""Files and directories that hold keys or personal data: private to the service's user."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_private_file(path: Path, data: bytes) -> bool:
    """Writes `data` to a new file `path` (0600, in a 0700 directory) all at once: written
    beside it, then linked into place, so processes starting together never read half a file
    and share whichever one was linked first. False if `path` already existed (kept)."""
    private_directory(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def private_directory(path: Path) -> Path:
    """A directory that holds personal data or keys (the data dir, the maildir, checkpoints,
    evidence packs): created 0700, and made 0700 if an older run left it open to others.
    Missing parents are created 0700 too (`mkdir(parents=True)` would leave them 0755)."""
    for missing in reversed([path, *path.parents]):
        if not missing.exists():
            missing.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path
