"""The checkpoints and keys a command trusts: the key ring given or the service's, the signing
key, and the checkpoints they verify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from entrypoints.cli.base import UsageError
from entrypoints.cli.cards import service
from infra.config import ConfigError


def trusted_checkpoints(
    public_key: Path | None, trusted_keys: Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(checkpoints signed by a trusted key, problems with the others)."""
    from infra import checkpoints as cps

    settings = service().settings
    ring = trusted_ring(public_key, trusted_keys)
    if ring is None:
        found = cps.paths(settings.checkpoint_dir)
        return [], [{"card_id": None, "version": None, "problem": f"{len(found)} checkpoint(s) "
                     "but no key to check them"}] if found else []
    return cps.trusted(settings.checkpoint_dir, ring)


def ring_file() -> Path:
    from infra.checkpoints import ring_path

    return ring_path(service().settings.checkpoint_dir)


def read_ring(path: Path, option: str) -> Any:
    from infra import checkpoints as cps

    try:
        return cps.KeyRing.load(path.read_bytes())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{option}: {error}") from None


def trusted_ring(public_key: Path | None, trusted_keys: Path | None) -> Any:
    """The ring given (--trusted-keys, --public-key), else the service's ring file, else the
    public half of the signing key; None if there is none."""
    from infra import checkpoints as cps

    settings = service().settings
    if trusted_keys is not None:
        return read_ring(trusted_keys, "--trusted-keys")
    if public_key is not None:
        return read_ring(public_key, "--public-key")
    if ring_file().exists():
        return read_ring(ring_file(), str(ring_file()))
    if settings.signing_key_file.exists():
        try:
            key = cps.load_signing_key(settings.signing_key_file, create=False).public_key()
        except ValueError as error:
            raise ConfigError(f"GIFTCARDS_SIGNING_KEY_FILE: {error}") from None
        return cps.KeyRing.of(key)
    return None


def signing_key(*, create: bool) -> Any:
    from infra import checkpoints as cps

    settings = service().settings
    try:
        return cps.trusted_signing_key(settings.signing_key_file, settings.checkpoint_dir,
                                       create=create)
    except (OSError, ValueError) as error:
        raise ConfigError(f"GIFTCARDS_SIGNING_KEY_FILE: {error}") from None
