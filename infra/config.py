"""Settings from the environment (GIFTCARDS_*), validated once at start."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from domain.calendar import parse_instant
from infra.config_keys import chain_key_file, master_key
from infra.config_links import (
    REPLICATION_MODES,
    KafkaLink,
    KafkaSecurity,
    kafka_security,
    refuse_any_host,
    refuse_plaintext_links,
)
from infra.config_values import ConfigError, choice, integer, matching, readable, seconds, switch

ENVIRONMENTS = ("development", "test", "production")
# CloudEvents attributes of the published records (infra/kafka/cloudevents.py).
CLOUDEVENTS_TYPE_PREFIX = "com.example.giftcard"
CLOUDEVENTS_SOURCE = "https://giftcards.example.com"
# Envelopes per views transaction, at most: a store page, or the records one Kafka poll hands
# over. Each transaction pays fixed costs (the lock, positions, one prefetch query and one COPY
# or upsert per table, a commit): measured on a durable PostgreSQL, a store rebuild applies
# 13-24% more events per second in transactions of 4,000 than of 1,000, its memory still
# bounded by three batches (~3 MB of envelopes each: one applied, one read ahead, one waiting).
PROJECTION_BATCH = 4000
_REVERSE_DNS = re.compile(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9_-]*)+")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]+")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    env: str
    data_dir: Path
    database_url: str
    master_key: bytes
    now: datetime | None
    markets_file: Path | None
    kafka_bootstrap: str | None
    topic_prefix: str
    partitions: int
    replication_factor: int
    views_url: str
    projection_batch: int
    fraud_config: Path | None
    relay_lease_seconds: int = 10
    cloudevents_type_prefix: str = CLOUDEVENTS_TYPE_PREFIX
    cloudevents_source: str = CLOUDEVENTS_SOURCE
    # Audit: checkpoint signing key (a file, never in the database) and where checkpoints go.
    signing_key_file: Path = Path("var/checkpoint-signing.pem")
    checkpoint_dir: Path = Path("var/checkpoints")
    checkpoint_every_events: int = 10_000
    checkpoint_every_minutes: int = 60
    # Between full checkpoints, an increment signing the heads that changed (0: none).
    checkpoint_increment_seconds: float = 5.0
    # The key sealing every chain link (HMAC): outside the database and the data directory;
    # None (memory stores only): a key for the process's lifetime.
    chain_key_file: Path | None = None
    # Personal data (P2): where the key-encryption keys live (never in the database),
    # how often they rotate, and how long each category of personal data is kept.
    kek_file: Path | None = None
    kek_rotation_hours: int = 24
    retention_card_years: int = 3
    retention_fraud_years: int = 5
    retention_dead_letter_days: int = 30
    retention_access_log_days: int = 365
    retention_request_years: int = 5
    smtp_url: str | None = None  # unset: code e-mails are `.eml` files under data_dir/mail
    hold_seconds: int = 1800
    # The API's group commit; off only to measure the naive baseline.
    api_group_commit: bool = True
    # How long an API process trusts what it read of a key (a revocation shows within this).
    api_key_cache_seconds: float = 1.0
    # How far this host's clock may be from the database's before it refuses work.
    max_clock_skew_seconds: float = 2.0
    db_pool_size: int = 10
    # What production accepts of the database's replication (infra/replication.py).
    database_replication: str = "synchronous"
    kafka_security: KafkaSecurity = KafkaSecurity()
    smtp_ca_file: Path | None = None  # None: the system's trusted CAs
    # HTTP connections (entrypoints.http.protocol): how long a client may take, how much it
    # may send before its body, how many connections one API process keeps open.
    http_header_timeout_seconds: float = 10.0
    http_body_timeout_seconds: float = 10.0
    http_keep_alive_seconds: float = 5.0
    http_max_header_bytes: int = 16_384
    http_max_connections: int = 512
    # The operators' console (entrypoints.console) on the API's app, and its idle timeout.
    console: bool = False
    console_idle_seconds: float = 900.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def kafka_link(self) -> KafkaLink:
        """The brokers with this service's security (only where KAFKA_BOOTSTRAP_SERVERS is set)."""
        if self.kafka_bootstrap is None:
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set")
        return KafkaLink(bootstrap=self.kafka_bootstrap, security=self.kafka_security)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    mode = env.get("GIFTCARDS_ENV", "development")
    if mode not in ENVIRONMENTS:
        # A typo ("prod", "Production") must not quietly run a production host in development.
        raise ConfigError(
            f"GIFTCARDS_ENV must be one of {', '.join(ENVIRONMENTS)}, not {mode[:40]!r}"
        )
    data_dir = Path(env.get("GIFTCARDS_DATA_DIR", "./var"))
    url = env.get("GIFTCARDS_DATABASE_URL") or f"sqlite:///{data_dir / 'giftcards.sqlite3'}"
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://", "memory://")):
        raise ConfigError("GIFTCARDS_DATABASE_URL must start with sqlite:/// or postgresql://")
    refuse_any_host(url)
    key = master_key(env, mode, data_dir)  # in production: read, never generated
    if mode == "production":
        # Before anything is made (a directory, a store): a refused start leaves nothing.
        refuse_plaintext_links(env, url)
    return Settings(
        env=mode,
        data_dir=data_dir,
        database_url=url,
        master_key=key,
        now=_pinned_now(env, mode),
        markets_file=Path(markets) if (markets := env.get("GIFTCARDS_MARKETS_FILE")) else None,
        kafka_bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        topic_prefix=env.get("GIFTCARDS_TOPIC_PREFIX", ""),
        partitions=integer(env, "GIFTCARDS_PARTITIONS", 12),
        replication_factor=integer(env, "GIFTCARDS_REPLICATION_FACTOR", 1),
        views_url=_views_url(env, url),
        projection_batch=integer(env, "GIFTCARDS_PROJECTION_BATCH", PROJECTION_BATCH),
        fraud_config=Path(fraud) if (fraud := env.get("GIFTCARDS_FRAUD_CONFIG")) else None,
        relay_lease_seconds=integer(env, "GIFTCARDS_RELAY_LEASE_SECONDS", 10),
        cloudevents_type_prefix=matching(
            env, "GIFTCARDS_CLOUDEVENTS_TYPE_PREFIX", CLOUDEVENTS_TYPE_PREFIX, _REVERSE_DNS,
            "a reverse-DNS name such as com.example.giftcard",
        ),
        cloudevents_source=matching(
            env, "GIFTCARDS_CLOUDEVENTS_SOURCE", CLOUDEVENTS_SOURCE, _ABSOLUTE_URI,
            "an absolute URI such as https://giftcards.example.com",
        ).rstrip("/"),
        signing_key_file=Path(
            env.get("GIFTCARDS_SIGNING_KEY_FILE") or data_dir / "checkpoint-signing.pem"
        ),
        checkpoint_dir=Path(env.get("GIFTCARDS_CHECKPOINT_DIR") or data_dir / "checkpoints"),
        chain_key_file=None if url == "memory://" else chain_key_file(env),
        checkpoint_every_events=integer(env, "GIFTCARDS_CHECKPOINT_EVERY_EVENTS", 10_000),
        checkpoint_every_minutes=integer(env, "GIFTCARDS_CHECKPOINT_EVERY_MINUTES", 60),
        checkpoint_increment_seconds=seconds(env, "GIFTCARDS_CHECKPOINT_INCREMENT_SECONDS",
                                              5.0),
        kek_file=None if url == "memory://" else Path(
            env.get("GIFTCARDS_KEK_FILE") or data_dir / "kek-ring"
        ),
        kek_rotation_hours=integer(env, "GIFTCARDS_KEK_ROTATION_HOURS", 24),
        retention_card_years=integer(env, "GIFTCARDS_RETENTION_CARD_YEARS", 3),
        retention_fraud_years=integer(env, "GIFTCARDS_RETENTION_FRAUD_YEARS", 5),
        retention_dead_letter_days=integer(env, "GIFTCARDS_RETENTION_DEAD_LETTER_DAYS", 30),
        retention_access_log_days=integer(env, "GIFTCARDS_RETENTION_ACCESS_LOG_DAYS", 365),
        retention_request_years=integer(env, "GIFTCARDS_RETENTION_REQUEST_YEARS", 5),
        smtp_url=_smtp_url(env),
        hold_seconds=integer(env, "GIFTCARDS_HOLD_SECONDS", 1800),
        api_group_commit=switch(env, "GIFTCARDS_API_GROUP_COMMIT", True),
        api_key_cache_seconds=seconds(env, "GIFTCARDS_API_KEY_CACHE_SECONDS", 1.0),
        max_clock_skew_seconds=seconds(env, "GIFTCARDS_MAX_CLOCK_SKEW_SECONDS", 2.0),
        db_pool_size=_pool_size(env),
        database_replication=choice(env, "GIFTCARDS_DATABASE_REPLICATION", REPLICATION_MODES),
        kafka_security=kafka_security(env),
        smtp_ca_file=readable(env, "GIFTCARDS_SMTP_CA_FILE"),
        http_header_timeout_seconds=seconds(env, "GIFTCARDS_HTTP_HEADER_TIMEOUT_SECONDS", 10.0),
        http_body_timeout_seconds=seconds(env, "GIFTCARDS_HTTP_BODY_TIMEOUT_SECONDS", 10.0),
        http_keep_alive_seconds=seconds(env, "GIFTCARDS_HTTP_KEEP_ALIVE_SECONDS", 5.0),
        http_max_header_bytes=integer(env, "GIFTCARDS_HTTP_MAX_HEADER_BYTES", 16_384),
        http_max_connections=integer(env, "GIFTCARDS_HTTP_MAX_CONNECTIONS", 512),
        console=switch(env, "GIFTCARDS_CONSOLE", False),
        console_idle_seconds=seconds(env, "GIFTCARDS_CONSOLE_IDLE_SECONDS", 900.0),
    )


def _smtp_url(env: dict[str, str]) -> str | None:
    url = env.get("GIFTCARDS_SMTP_URL") or None
    if url is not None and not url.startswith(("smtp://", "smtps://")):
        # Not echoed: the URL may carry the server's password.
        raise ConfigError("GIFTCARDS_SMTP_URL must start with smtp:// or smtps://")
    return url


def log_format(environ: dict[str, str] | None = None) -> str:
    """GIFTCARDS_LOG_FORMAT: `text` (default) or `json` (one object per line). Read on its own,
    before the rest: logging is set up before Settings can fail and say why."""
    env = os.environ if environ is None else environ
    fmt = env.get("GIFTCARDS_LOG_FORMAT", "text")
    if fmt not in ("text", "json"):
        raise ConfigError(f"GIFTCARDS_LOG_FORMAT must be text or json, not {fmt[:20]!r}")
    return fmt


def _views_url(env: dict[str, str], store_url: str) -> str:
    """Views live in GIFTCARDS_VIEWS_URL, by default beside the event store."""
    url = env.get("GIFTCARDS_VIEWS_URL") or store_url
    if url == "memory://":
        return "sqlite:///:memory:"
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("GIFTCARDS_VIEWS_URL must start with sqlite:/// or postgresql://")
    return url


# The fewest connections `serve` makes progress with (each part holds one at a time, a few
# two: docs/operations.md gives the count per role).
MIN_POOL_SIZE = 4


def _pool_size(env: dict[str, str]) -> int:
    size = integer(env, "GIFTCARDS_DB_POOL_SIZE", 10)
    if size < MIN_POOL_SIZE:
        raise ConfigError(f"GIFTCARDS_DB_POOL_SIZE must be at least {MIN_POOL_SIZE}")
    return size


def _pinned_now(env: dict[str, str], mode: str) -> datetime | None:
    raw = env.get("GIFTCARDS_NOW")
    if not raw:
        return None
    if mode == "production":
        raise ConfigError("GIFTCARDS_NOW is refused in production")
    try:
        return parse_instant(raw)
    except ValueError:
        raise ConfigError(f"GIFTCARDS_NOW is not an ISO-8601 instant: {raw[:40]!r}") from None


__all__ = ["ConfigError", "KafkaLink", "KafkaSecurity", "Settings", "load_settings", "log_format"]
