"""The composition root: wires settings, storage, secrets and the vault into the application."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from eventsourcing.utils import get_topic

from application.cards import GiftCards
from domain.codes import generate_code
from domain.markets import Markets
from infra.config import Settings, load_settings
from infra.db import Database, eventsourcing_env
from infra.lookup import stream_loader
from infra.orjsonpydantic import OrjsonTranscoder, PydanticMapper
from infra.secrets import HmacCodeHasher, Keys
from infra.vault import Vault


@dataclass
class Service:
    """Everything a process needs, built once."""

    settings: Settings
    app: GiftCards
    db: Database
    vault: Vault

    def close(self) -> None:
        self.app.close()
        self.db.close()


def clock_for(settings: Settings) -> Callable[[], datetime]:
    pinned = settings.now
    if pinned is not None:
        return lambda: pinned
    return lambda: datetime.now(UTC)


def build(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    codes: Callable[[], str] = generate_code,
) -> Service:
    settings = settings or load_settings()
    keys = Keys.from_master(settings.master_key)
    db = Database(settings.database_url) if settings.database_url != "memory://" else Database(
        "sqlite:///:memory:"
    )
    vault = Vault(db, wrapping_key=keys.key_wrapping, subject_key=keys.subject_hmac)
    env = {
        **eventsourcing_env(settings.database_url),
        "CREATE_TABLE": "y",
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
    }
    markets = Markets.load(settings.markets_file) if settings.markets_file else Markets.load()
    app = GiftCards(
        env,
        clock=clock or clock_for(settings),
        codes=codes,
        hasher=HmacCodeHasher(keys.code_hmac),
        vault=vault,
        markets=markets,
    )
    app.load_streams = stream_loader(app.recorder, app.mapper)
    return Service(settings=settings, app=app, db=db, vault=vault)
