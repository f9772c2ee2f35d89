"""Settings from the environment (GIFTCARDS_*), validated once at start."""

from __future__ import annotations

import math
import os
import re
import secrets
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from domain.calendar import parse_instant

ENVIRONMENTS = ("development", "test", "production")
# A production key must carry at least this much entropy, estimated from its own characters.
MIN_KEY_BITS = 128
KEY_HOWTO = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
# CloudEvents attributes of the published records (infra/kafka/cloudevents.py).
CLOUDEVENTS_TYPE_PREFIX = "com.example.giftcard"
CLOUDEVENTS_SOURCE = "https://giftcards.example.com"
_REVERSE_DNS = re.compile(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9_-]*)+")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]+")


class ConfigError(Exception):
    """The environment is unusable; the message says which variable and why."""


class KafkaSecurity(BaseModel):
    """How every Kafka client of the service authenticates and encrypts (infra/kafka/clients.py
    turns it into client options): PLAINTEXT, or SASL_SSL with SCRAM, a CA, hostname checked."""

    model_config = ConfigDict(frozen=True)

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    ca_file: Path | None = None  # None: the system's trusted CAs


class KafkaLink(BaseModel):
    """The brokers and how to reach them: what every client constructor takes."""

    model_config = ConfigDict(frozen=True)

    bootstrap: str
    security: KafkaSecurity = KafkaSecurity()


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
    _refuse_any_host(url)
    master_key = _master_key(env, mode, data_dir)  # in production: read, never generated
    if mode == "production":
        # Before anything is made (a directory, a store): a refused start leaves nothing.
        _refuse_plaintext_links(env, url)
    return Settings(
        env=mode,
        data_dir=data_dir,
        database_url=url,
        master_key=master_key,
        now=_pinned_now(env, mode),
        markets_file=Path(markets) if (markets := env.get("GIFTCARDS_MARKETS_FILE")) else None,
        kafka_bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        topic_prefix=env.get("GIFTCARDS_TOPIC_PREFIX", ""),
        partitions=_int(env, "GIFTCARDS_PARTITIONS", 12),
        replication_factor=_int(env, "GIFTCARDS_REPLICATION_FACTOR", 1),
        views_url=_views_url(env, url),
        projection_batch=_int(env, "GIFTCARDS_PROJECTION_BATCH", 1000),
        fraud_config=Path(fraud) if (fraud := env.get("GIFTCARDS_FRAUD_CONFIG")) else None,
        relay_lease_seconds=_int(env, "GIFTCARDS_RELAY_LEASE_SECONDS", 10),
        cloudevents_type_prefix=_matching(
            env, "GIFTCARDS_CLOUDEVENTS_TYPE_PREFIX", CLOUDEVENTS_TYPE_PREFIX, _REVERSE_DNS,
            "a reverse-DNS name such as com.example.giftcard",
        ),
        cloudevents_source=_matching(
            env, "GIFTCARDS_CLOUDEVENTS_SOURCE", CLOUDEVENTS_SOURCE, _ABSOLUTE_URI,
            "an absolute URI such as https://giftcards.example.com",
        ).rstrip("/"),
        signing_key_file=Path(
            env.get("GIFTCARDS_SIGNING_KEY_FILE") or data_dir / "checkpoint-signing.pem"
        ),
        checkpoint_dir=Path(env.get("GIFTCARDS_CHECKPOINT_DIR") or data_dir / "checkpoints"),
        chain_key_file=None if url == "memory://" else _chain_key_file(env),
        checkpoint_every_events=_int(env, "GIFTCARDS_CHECKPOINT_EVERY_EVENTS", 10_000),
        checkpoint_every_minutes=_int(env, "GIFTCARDS_CHECKPOINT_EVERY_MINUTES", 60),
        checkpoint_increment_seconds=_seconds(env, "GIFTCARDS_CHECKPOINT_INCREMENT_SECONDS",
                                              5.0),
        kek_file=None if url == "memory://" else Path(
            env.get("GIFTCARDS_KEK_FILE") or data_dir / "kek-ring"
        ),
        kek_rotation_hours=_int(env, "GIFTCARDS_KEK_ROTATION_HOURS", 24),
        retention_card_years=_int(env, "GIFTCARDS_RETENTION_CARD_YEARS", 3),
        retention_fraud_years=_int(env, "GIFTCARDS_RETENTION_FRAUD_YEARS", 5),
        retention_dead_letter_days=_int(env, "GIFTCARDS_RETENTION_DEAD_LETTER_DAYS", 30),
        retention_access_log_days=_int(env, "GIFTCARDS_RETENTION_ACCESS_LOG_DAYS", 365),
        retention_request_years=_int(env, "GIFTCARDS_RETENTION_REQUEST_YEARS", 5),
        smtp_url=_smtp_url(env),
        hold_seconds=_int(env, "GIFTCARDS_HOLD_SECONDS", 1800),
        api_group_commit=_switch(env, "GIFTCARDS_API_GROUP_COMMIT", True),
        api_key_cache_seconds=_seconds(env, "GIFTCARDS_API_KEY_CACHE_SECONDS", 1.0),
        max_clock_skew_seconds=_seconds(env, "GIFTCARDS_MAX_CLOCK_SKEW_SECONDS", 2.0),
        db_pool_size=_pool_size(env),
        database_replication=_choice(env, "GIFTCARDS_DATABASE_REPLICATION", REPLICATION_MODES),
        kafka_security=_kafka_security(env),
        smtp_ca_file=_readable(env, "GIFTCARDS_SMTP_CA_FILE"),
        http_header_timeout_seconds=_seconds(env, "GIFTCARDS_HTTP_HEADER_TIMEOUT_SECONDS", 10.0),
        http_body_timeout_seconds=_seconds(env, "GIFTCARDS_HTTP_BODY_TIMEOUT_SECONDS", 10.0),
        http_keep_alive_seconds=_seconds(env, "GIFTCARDS_HTTP_KEEP_ALIVE_SECONDS", 5.0),
        http_max_header_bytes=_int(env, "GIFTCARDS_HTTP_MAX_HEADER_BYTES", 16_384),
        http_max_connections=_int(env, "GIFTCARDS_HTTP_MAX_CONNECTIONS", 512),
        console=_switch(env, "GIFTCARDS_CONSOLE", False),
        console_idle_seconds=_seconds(env, "GIFTCARDS_CONSOLE_IDLE_SECONDS", 900.0),
    )


KAFKA_PROTOCOLS = ("PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
# libpq's modes that verify the server's certificate (verify-full also checks its name).
VERIFIED_SSLMODES = ("verify-full", "verify-ca")


def _refuse_plaintext_links(env: dict[str, str], url: str) -> None:
    """Production carries codes, personal data and money only over encrypted, authenticated
    links: each plaintext one is refused, naming the setting to change."""
    if env.get("KAFKA_BOOTSTRAP_SERVERS") and env.get(
        "GIFTCARDS_KAFKA_SECURITY_PROTOCOL", ""
    ).strip().upper() != "SASL_SSL":
        raise ConfigError(
            "GIFTCARDS_KAFKA_SECURITY_PROTOCOL must be SASL_SSL in production (Kafka over "
            "plaintext is refused)"
        )
    for name, value in (("GIFTCARDS_DATABASE_URL", url),
                        ("GIFTCARDS_VIEWS_URL", env.get("GIFTCARDS_VIEWS_URL") or url)):
        if value.startswith(("postgresql://", "postgres://")):
            modes = parse_qs(urlsplit(value).query).get("sslmode", [""])
            if modes[-1] not in VERIFIED_SSLMODES:
                raise ConfigError(
                    f"{name} must carry sslmode=verify-full (or verify-ca) in production "
                    "(PostgreSQL without a verified TLS link is refused)"
                )
    smtp = env.get("GIFTCARDS_SMTP_URL") or ""
    if not smtp:
        raise ConfigError(
            "GIFTCARDS_SMTP_URL is required in production (smtps://… or smtp://…?starttls=1): "
            "code e-mails are not left in a local maildir"
        )
    if smtp.startswith("smtp://") and not smtp_starttls(smtp):
        raise ConfigError(
            "GIFTCARDS_SMTP_URL must be smtps://… or smtp://…?starttls=1 in production "
            "(SMTP without TLS is refused)"
        )


def smtp_starttls(smtp_url: str) -> bool:
    """The one reading of `?starttls=` (infra/mail/transport.py uses it too)."""
    return parse_qs(urlsplit(smtp_url).query).get("starttls", ["0"])[-1] in ("1", "true", "yes")


def _kafka_security(env: dict[str, str]) -> KafkaSecurity:
    protocol = env.get("GIFTCARDS_KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
    if protocol not in KAFKA_PROTOCOLS:
        raise ConfigError(
            f"GIFTCARDS_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_PROTOCOLS)}"
        )
    if protocol == "PLAINTEXT":
        return KafkaSecurity()
    mechanism = env.get("GIFTCARDS_KAFKA_SASL_MECHANISM", "").strip().upper() or SASL_MECHANISMS[0]
    if mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"GIFTCARDS_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}"
        )
    username = env.get("GIFTCARDS_KAFKA_SASL_USERNAME", "")
    if not username:
        raise ConfigError("GIFTCARDS_KAFKA_SASL_USERNAME is required with SASL_SSL")
    password = env.get("GIFTCARDS_KAFKA_SASL_PASSWORD", "")
    if not password and (path := _readable(env, "GIFTCARDS_KAFKA_SASL_PASSWORD_FILE")):
        password = path.read_text().strip()
    if not password:
        raise ConfigError(
            "GIFTCARDS_KAFKA_SASL_PASSWORD (or GIFTCARDS_KAFKA_SASL_PASSWORD_FILE) is required "
            "with SASL_SSL"
        )
    return KafkaSecurity(
        protocol=protocol, sasl_mechanism=mechanism, username=username, password=password,
        ca_file=_readable(env, "GIFTCARDS_KAFKA_CA_FILE"),
    )


def _readable(env: dict[str, str], name: str) -> Path | None:
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


def _smtp_url(env: dict[str, str]) -> str | None:
    url = env.get("GIFTCARDS_SMTP_URL") or None
    if url is not None and not url.startswith(("smtp://", "smtps://")):
        # Not echoed: the URL may carry the server's password.
        raise ConfigError("GIFTCARDS_SMTP_URL must start with smtp:// or smtps://")
    return url


def _matching(
    env: dict[str, str], name: str, default: str, form: re.Pattern[str], what: str
) -> str:
    value = env.get(name) or default
    if not form.fullmatch(value):
        raise ConfigError(f"{name} must be {what}, not {value[:60]!r}")
    return value
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


def _switch(env: dict[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("0", "1", "true", "false", "on", "off"):
        raise ConfigError(f"{name} must be on or off")
    return value in ("1", "true", "on")


# What GIFTCARDS_DATABASE_REPLICATION may state (the first is the default).
REPLICATION_MODES = ("synchronous", "single-node", "asynchronous")


def _follows_primary(url: str) -> bool:
    """Whether libpq keeps only a server accepting writes (target_session_attrs of a cluster
    URL)."""
    attrs = parse_qs(urlsplit(url).query).get("target_session_attrs", [""])[-1]
    return attrs in ("read-write", "primary")


def _refuse_any_host(url: str) -> None:
    """A URL naming several servers (a cluster) must make libpq keep the primary: otherwise it
    connects to the first that answers, a standby that refuses every write."""
    if not url.startswith(("postgresql://", "postgres://")):
        return
    parts = urlsplit(url)
    if "," not in parts.netloc:
        return
    if not _follows_primary(url):
        raise ConfigError(
            "GIFTCARDS_DATABASE_URL names several servers: add "
            "target_session_attrs=read-write so that the service writes to the primary"
        )


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or allowed[0]
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value[:40]!r}")
    return value


# The fewest connections `serve` makes progress with (each part holds one at a time, a few
# two: docs/operations.md gives the count per role).
MIN_POOL_SIZE = 4


def _pool_size(env: dict[str, str]) -> int:
    size = _int(env, "GIFTCARDS_DB_POOL_SIZE", 10)
    if size < MIN_POOL_SIZE:
        raise ConfigError(f"GIFTCARDS_DB_POOL_SIZE must be at least {MIN_POOL_SIZE}")
    return size


def _int(env: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if not 0 <= value <= 3600:
        raise ConfigError(f"{name} must be between 0 and 3600 seconds")
    return value


def _chain_key_file(env: dict[str, str]) -> Path:
    """GIFTCARDS_CHAIN_KEY_FILE, else (outside production) the user's configuration directory:
    never the data directory, so a copy of the database and its directory cannot forge."""
    given = env.get("GIFTCARDS_CHAIN_KEY_FILE")
    if given:
        return Path(given)
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "giftcards" / "chain.key"


def _master_key(env: dict[str, str], mode: str, data_dir: Path) -> bytes:
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


# What each variable means: the configuration reference (docs/reference/configuration.md) is
# generated from this, and a test fails on a variable read above that is missing here.
VARIABLES: dict[str, str] = {
    "GIFTCARDS_DATABASE_URL": "`sqlite:///path` (default `<data dir>/giftcards.sqlite3`) or "
    "`postgresql://user:pw@host:port/db[?sslmode=verify-full&sslrootcert=/path/ca.pem…]`: "
    "libpq's parameters in the query reach every connection (the store's, the views', the "
    "API's); production refuses PostgreSQL without `sslmode=verify-full` or `verify-ca`. A "
    "cluster (Patroni): every node, `postgresql://user:pw@host1:5432,host2:5432/db?"
    "target_session_attrs=read-write&…`, and libpq connects to the primary (required with "
    "several hosts; docs/operations.md)",
    "GIFTCARDS_DATABASE_REPLICATION": "what production accepts of PostgreSQL's replication, "
    "checked at start: `synchronous` (default: the server is a primary, "
    "`synchronous_standby_names` is set and `synchronous_commit` is `on` or `remote_apply`), "
    "`single-node` (stated: no standby; the loss of the machine loses what the last backup "
    "lacks) or `asynchronous` (explicitly accepting that a failover loses the last commits); "
    "anything else refused with `asynchronous_replication_refused` or `database_not_primary`, "
    "exit 2",
    "GIFTCARDS_DATA_DIR": "where local files go (default `./var/`): the SQLite store, dev keys, "
    "checkpoints, the KEK ring, the maildir",
    "GIFTCARDS_ENV": "`development` (default), `test` or `production`, exactly; anything else "
    "(`prod`, `Production`) is refused with exit 2",
    "GIFTCARDS_SECRET_KEY": "master key (≥ 32 characters, ≥ 128 bits estimated in production) "
    "for code HMACs, subject pseudonyms and key wrapping; required in production, else a dev key "
    "is generated under the data dir. Generate one with `python -c 'import secrets; "
    "print(secrets.token_urlsafe(48))'`; BACK IT UP: without it no code can be checked",
    "GIFTCARDS_NOW": "ISO-8601 instant pinning the clock (tests, sandboxes, the demo); refused "
    "in production",
    "KAFKA_BOOTSTRAP_SERVERS": "Kafka brokers, `host:port[,host:port…]`; unset = embedded mode "
    "(views follow the store)",
    "GIFTCARDS_MARKETS_FILE": "TOML of the markets and the code-guessing limit (default "
    "`domain/markets.toml`)",
    "GIFTCARDS_TOPIC_PREFIX": "prefix of every topic name (default none)",
    "GIFTCARDS_PARTITIONS": "partitions of the topics the service creates (12)",
    "GIFTCARDS_REPLICATION_FACTOR": "their replication factor (1; 3 on a cluster)",
    "GIFTCARDS_VIEWS_URL": "database of the views (`sqlite:///…` or `postgresql://…`), default "
    "the event store's",
    "GIFTCARDS_PROJECTION_BATCH": "envelopes per view transaction when `project --source store` "
    "follows the store (1000)",
    "GIFTCARDS_FRAUD_CONFIG": "TOML overriding the F1–F6 thresholds (`[fraud]` table, see "
    "`projections/config.py`)",
    "GIFTCARDS_LOG_FORMAT": "`text` (default) or `json` (one object per line: `ts`, `level`, "
    "`logger`, `message`, `exc`)",
    "GIFTCARDS_RELAY_LEASE_SECONDS": "how long the active relay's (and delivery worker's) lease "
    "lasts unrenewed (10)",
    "GIFTCARDS_CLOUDEVENTS_TYPE_PREFIX": "reverse-DNS prefix of the CloudEvents types "
    "(`com.example.giftcard`)",
    "GIFTCARDS_CLOUDEVENTS_SOURCE": "absolute URI naming this service, the CloudEvents `source` "
    "(`https://giftcards.example.com`)",
    "GIFTCARDS_SIGNING_KEY_FILE": "Ed25519 private key (PEM) signing audit checkpoints (default "
    "`<data dir>/checkpoint-signing.pem`, generated outside production); back it up",
    "GIFTCARDS_CHAIN_KEY_FILE": "the chain key (32 random bytes, hex) sealing every card "
    "event's chain link with HMAC-SHA256; outside the database, apart from the signing key and "
    "the KEKs. Default `$XDG_CONFIG_HOME/giftcards/chain.key` (`~/.config/giftcards/chain.key`), "
    "generated outside production, never in the data dir; required in production; back it up",
    "GIFTCARDS_CHECKPOINT_DIR": "where signed checkpoints and their public key go (default "
    "`<data dir>/checkpoints`)",
    "GIFTCARDS_CHECKPOINT_EVERY_EVENTS": "`serve` signs a checkpoint after this many new events "
    "(10000)",
    "GIFTCARDS_CHECKPOINT_EVERY_MINUTES": "…or this long after the last one when any event is "
    "new (60)",
    "GIFTCARDS_CHECKPOINT_INCREMENT_SECONDS": "in between, `serve` signs an increment of the "
    "card heads that changed at most this long after they did (5; 0: no increments)",
    "GIFTCARDS_KEK_FILE": "the key-encryption keys wrapping subject keys (default "
    "`<data dir>/kek-ring`); every process must see the same file; back it up",
    "GIFTCARDS_KEK_ROTATION_HOURS": "how often `serve`/`gdpr purge` rotate the KEK (24)",
    "GIFTCARDS_RETENTION_CARD_YEARS": "personal data shredded this long after a subject's last "
    "card event (3)",
    "GIFTCARDS_RETENTION_DEAD_LETTER_DAYS": "dead letters expire on their topic after this many "
    "days (30, set when the topic is created)",
    "GIFTCARDS_RETENTION_ACCESS_LOG_DAYS": "access-log entries deleted by `gdpr purge` this many "
    "days after they were written (365)",
    "GIFTCARDS_RETENTION_REQUEST_YEARS": "closed rights requests and their outcomes deleted by "
    "`gdpr purge` this many years after they were closed (5)",
    "GIFTCARDS_SMTP_URL": "mail server of the code e-mails, `smtp://[user:pw@]host[:port]"
    "[?starttls=1]` or `smtps://…`; unset = `.eml` files in `<data dir>/mail/new/`; "
    "production requires `smtps://` or `?starttls=1`",
    "GIFTCARDS_CONSOLE": "the operators' console under `/console/` on the HTTP API (off; "
    "`--console` of `api`/`serve`, or `giftcards console`)",
    "GIFTCARDS_CONSOLE_IDLE_SECONDS": "a console session unused this long is signed out (900)",
    "GIFTCARDS_HOLD_SECONDS": "how long an HTTP authorization holds a card (1800)",
    "GIFTCARDS_API_GROUP_COMMIT": "the HTTP API saves concurrent commands in one transaction "
    "per batch (group commit, on); `off` only to measure the naive baseline",
    "GIFTCARDS_API_KEY_CACHE_SECONDS": "how long an API process reuses what it read of an API "
    "key (1.0; 0 = read the store on every request): a revoked key is refused everywhere "
    "within this time",
    "GIFTCARDS_MAX_CLOCK_SKEW_SECONDS": "how far (seconds) this host's clock may be from the "
    "database's (2.0): time decisions use the database's clock; past this the process takes no "
    "lease and records no event, and `serve`, `relay` and `consume` refuse to start (exit 2)",
    "GIFTCARDS_KAFKA_SECURITY_PROTOCOL": "`PLAINTEXT` (default outside production) or "
    "`SASL_SSL`, for every Kafka client of the service (relay, consumers, projections, API, "
    "admin); production refuses anything but `SASL_SSL` when `KAFKA_BOOTSTRAP_SERVERS` is set",
    "GIFTCARDS_KAFKA_SASL_MECHANISM": "`SCRAM-SHA-512` (default) or `SCRAM-SHA-256`",
    "GIFTCARDS_KAFKA_SASL_USERNAME": "the service's SCRAM user on the brokers (required with "
    "`SASL_SSL`)",
    "GIFTCARDS_KAFKA_SASL_PASSWORD": "its password (or give `GIFTCARDS_KAFKA_SASL_PASSWORD_FILE`)",
    "GIFTCARDS_KAFKA_SASL_PASSWORD_FILE": "a file holding the SCRAM password (read at start; "
    "preferred: it stays out of the process environment)",
    "GIFTCARDS_KAFKA_CA_FILE": "PEM file of the CA(s) that signed the brokers' certificates "
    "(default: the system's trusted CAs); the brokers' host names are always verified",
    "GIFTCARDS_SMTP_CA_FILE": "PEM file of the CA(s) that signed the mail server's certificate "
    "(default: the system's trusted CAs); STARTTLS and smtps:// always verify the certificate "
    "and host name",
    "GIFTCARDS_HTTP_HEADER_TIMEOUT_SECONDS": "an HTTP client must send its request line and "
    "headers within this many seconds of connecting or of starting a request (10); else the "
    "connection is closed (408 if nothing was answered yet)",
    "GIFTCARDS_HTTP_BODY_TIMEOUT_SECONDS": "an HTTP request's body must arrive within this many "
    "seconds of its headers (10); else 408 and the connection is closed",
    "GIFTCARDS_HTTP_KEEP_ALIVE_SECONDS": "an idle keep-alive HTTP connection is closed after this "
    "many seconds (5)",
    "GIFTCARDS_HTTP_MAX_HEADER_BYTES": "request line and headers over this many bytes are "
    "refused 431 and the connection closed (16384)",
    "GIFTCARDS_DB_POOL_SIZE": "PostgreSQL connections one process holds at most (10, at least "
    "4): all its parts and the event store share one pool; give PostgreSQL the sum over "
    "instances (docs/operations.md, Connection budget)",
    "GIFTCARDS_HTTP_MAX_CONNECTIONS": "open HTTP connections per API process (512; keep it under "
    "the process's file limit); a connection over it is closed at once",
    "GIFTCARDS_RETENTION_FRAUD_YEARS": "fraud alerts and F1/F2 window state are dropped this "
    "long after they were raised (5; `gdpr purge`, and `serve` hourly)",
}


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
