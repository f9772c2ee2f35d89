"""The service's links to Kafka, PostgreSQL and SMTP: Kafka's security, production's TLS
demands, and a cluster URL that must keep the primary."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from infra.config_values import ConfigError, readable


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


KAFKA_PROTOCOLS = ("PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
# libpq's modes that verify the server's certificate (verify-full also checks its name).
VERIFIED_SSLMODES = ("verify-full", "verify-ca")


def refuse_plaintext_links(env: dict[str, str], url: str) -> None:
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


def kafka_security(env: dict[str, str]) -> KafkaSecurity:
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
    if not password and (path := readable(env, "GIFTCARDS_KAFKA_SASL_PASSWORD_FILE")):
        password = path.read_text().strip()
    if not password:
        raise ConfigError(
            "GIFTCARDS_KAFKA_SASL_PASSWORD (or GIFTCARDS_KAFKA_SASL_PASSWORD_FILE) is required "
            "with SASL_SSL"
        )
    return KafkaSecurity(
        protocol=protocol, sasl_mechanism=mechanism, username=username, password=password,
        ca_file=readable(env, "GIFTCARDS_KAFKA_CA_FILE"),
    )


# What GIFTCARDS_DATABASE_REPLICATION may state (the first is the default).
REPLICATION_MODES = ("synchronous", "single-node", "asynchronous")


def _follows_primary(url: str) -> bool:
    """Whether libpq keeps only a server accepting writes (target_session_attrs of a cluster
    URL)."""
    attrs = parse_qs(urlsplit(url).query).get("target_session_attrs", [""])[-1]
    return attrs in ("read-write", "primary")


def refuse_any_host(url: str) -> None:
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
