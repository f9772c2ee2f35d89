"""The parts one process runs on, built once by the composition root (composition/bootstrap.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from application.cards import GiftCards
from infra.config import Settings
from infra.db import Database
from infra.dbclock import DatabaseClock
from infra.privacy_records import SqlPrivacyRecords
from infra.pseudonyms import StreamPseudonyms
from infra.vault import Vault


@dataclass
class Service:
    """Everything a process needs, built once."""

    settings: Settings
    app: GiftCards
    db: Database
    vault: Vault
    pseudonyms: StreamPseudonyms  # the published stream's (the application holds the same)
    # The database's clock as this process measures it (None: a clock given by the caller).
    clock: DatabaseClock | None = None

    @cached_property
    def privacy_records(self) -> SqlPrivacyRecords:
        """The rights' records beside the store (the application's PrivacyRecords port)."""
        return SqlPrivacyRecords(self.db)

    def close(self) -> None:
        self.app.close()
        self.db.close()
