"""Transport security is configured once in the settings: Kafka SASL_SSL (SCRAM) with a CA and
hostname verification for every client, PostgreSQL's sslmode kept in every connection, SMTP
STARTTLS or implicit TLS verified against a CA; production refuses any plaintext link."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from infra.config import ConfigError, load_settings
from infra.db import eventsourcing_env
from infra.kafka import clients
from infra.mail.transport import SmtpTransport

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
KEY = secrets.token_urlsafe(48)
SECURE_PG = "postgresql://gc:pw@db.internal:5432/giftcards?sslmode=verify-full&sslrootcert=/ca.pem"


def secure(tmp_path: Path, **more: str) -> dict[str, str]:
    """A production environment whose every link is encrypted and verified."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return {
        "GIFTCARDS_ENV": "production",
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_SECRET_KEY": KEY,
        "GIFTCARDS_DATABASE_URL": SECURE_PG,
        "KAFKA_BOOTSTRAP_SERVERS": "kafka.internal:9093",
        "GIFTCARDS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "GIFTCARDS_KAFKA_SASL_USERNAME": "giftcards",
        "GIFTCARDS_KAFKA_SASL_PASSWORD": "s3cret-pw",
        "GIFTCARDS_KAFKA_CA_FILE": str(ca),
        "GIFTCARDS_SMTP_URL": "smtp://mail.internal:587?starttls=1",
        "GIFTCARDS_SMTP_CA_FILE": str(ca),
        **more,
    }


def test_a_production_environment_with_every_link_secured_loads(tmp_path: Path) -> None:
    settings = load_settings(secure(tmp_path))
    assert settings.kafka_security.protocol == "SASL_SSL"
    assert settings.kafka_security.sasl_mechanism == "SCRAM-SHA-512"
    assert "s3cret-pw" not in repr(settings), "the password is never shown"


# Each plaintext link, and the setting the refusal must name.
PLAINTEXT_LINKS = [
    ({"GIFTCARDS_KAFKA_SECURITY_PROTOCOL": ""}, "GIFTCARDS_KAFKA_SECURITY_PROTOCOL"),
    ({"GIFTCARDS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "GIFTCARDS_KAFKA_SECURITY_PROTOCOL"),
    ({"GIFTCARDS_DATABASE_URL": "postgresql://gc:pw@db.internal/giftcards"},
     "GIFTCARDS_DATABASE_URL"),
    ({"GIFTCARDS_DATABASE_URL": "postgresql://gc:pw@db.internal/giftcards?sslmode=require"},
     "GIFTCARDS_DATABASE_URL"),
    ({"GIFTCARDS_VIEWS_URL": "postgresql://gc:pw@views.internal/views?sslmode=prefer"},
     "GIFTCARDS_VIEWS_URL"),
    ({"GIFTCARDS_SMTP_URL": "smtp://mail.internal:25"}, "GIFTCARDS_SMTP_URL"),
    ({"GIFTCARDS_SMTP_URL": "smtp://mail.internal:25?starttls=0"}, "GIFTCARDS_SMTP_URL"),
    ({"GIFTCARDS_SMTP_URL": ""}, "GIFTCARDS_SMTP_URL"),  # the maildir: no mail server at all
]


@pytest.mark.parametrize(("change", "setting"), PLAINTEXT_LINKS)
def test_production_refuses_each_plaintext_link_naming_the_setting(
    tmp_path: Path, change: dict[str, str], setting: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(secure(tmp_path, **change))
    message = str(refused.value)
    assert setting in message and "production" in message, message
    assert "pw@" not in message, "a URL's password is never echoed"


@pytest.mark.parametrize(("change", "setting"), PLAINTEXT_LINKS)
def test_outside_production_plaintext_links_are_allowed(
    tmp_path: Path, change: dict[str, str], setting: str
) -> None:
    assert load_settings(secure(tmp_path, GIFTCARDS_ENV="test", **change))


def test_production_with_sqlite_and_embedded_kafka_has_no_link_to_secure(tmp_path: Path) -> None:
    env = secure(tmp_path, GIFTCARDS_DATABASE_URL=f"sqlite:///{tmp_path / 'gc.sqlite3'}")
    del env["KAFKA_BOOTSTRAP_SERVERS"]
    assert load_settings(env).kafka_bootstrap is None


@pytest.mark.parametrize(("change", "words"), [
    ({"GIFTCARDS_KAFKA_SECURITY_PROTOCOL": "SSL_PLEASE"}, "GIFTCARDS_KAFKA_SECURITY_PROTOCOL"),
    ({"GIFTCARDS_KAFKA_SASL_MECHANISM": "PLAIN"}, "GIFTCARDS_KAFKA_SASL_MECHANISM"),
    ({"GIFTCARDS_KAFKA_SASL_USERNAME": ""}, "GIFTCARDS_KAFKA_SASL_USERNAME"),
    ({"GIFTCARDS_KAFKA_SASL_PASSWORD": ""}, "GIFTCARDS_KAFKA_SASL_PASSWORD"),
    ({"GIFTCARDS_KAFKA_CA_FILE": "/nonexistent/ca.pem"}, "GIFTCARDS_KAFKA_CA_FILE"),
    ({"GIFTCARDS_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "GIFTCARDS_SMTP_CA_FILE"),
])
def test_incomplete_security_settings_are_named(
    tmp_path: Path, change: dict[str, str], words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(secure(tmp_path, GIFTCARDS_ENV="test", **change))


def test_the_kafka_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("from-a-file\n")
    env = secure(tmp_path, GIFTCARDS_KAFKA_SASL_PASSWORD_FILE=str(secret))
    del env["GIFTCARDS_KAFKA_SASL_PASSWORD"]
    assert load_settings(env).kafka_security.password == "from-a-file"


def test_every_kafka_client_gets_sasl_ssl_with_the_ca_and_hostname_verification(
    tmp_path: Path,
) -> None:
    settings = load_settings(secure(tmp_path))
    options = clients.options(settings.kafka_link)
    assert options == {
        "bootstrap_servers": "kafka.internal:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "giftcards",
        "sasl_plain_password": "s3cret-pw",
        "ssl_cafile": str(tmp_path / "ca.pem"),
        "ssl_check_hostname": True,
    }


def test_a_plaintext_link_adds_nothing_to_the_clients(tmp_path: Path) -> None:
    settings = load_settings({"GIFTCARDS_DATA_DIR": str(tmp_path), "GIFTCARDS_SECRET_KEY": KEY,
                              "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092"})
    assert clients.options(settings.kafka_link) == {"bootstrap_servers": "127.0.0.1:19092"}
    assert clients.options("127.0.0.1:1") == {"bootstrap_servers": "127.0.0.1:1"}


def test_every_kafka_client_of_the_service_is_built_in_one_place() -> None:
    """No module of the service constructs a kafka-python client itself: each takes the link's
    security from infra/kafka/clients.py."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("infra", "consumers", "projections", "composition", "entrypoints",
                    "application"):
        for path in (root / package).rglob("*.py"):
            if path == root / "infra" / "kafka" / "clients.py":
                continue
            text = path.read_text()
            for name in ("KafkaProducer(", "KafkaConsumer(", "KafkaAdminClient("):
                if name in text:
                    offenders.append(f"{path.relative_to(root)}: {name}")
    assert offenders == []


def test_the_eventsourcing_store_keeps_the_postgres_tls_parameters() -> None:
    env = eventsourcing_env(SECURE_PG)
    assert env["POSTGRES_HOST"] == "db.internal"
    assert env["POSTGRES_CONNECTION_OPTIONS"] == "sslmode=verify-full&sslrootcert=/ca.pem"
    from eventsourcing.utils import resolve_topic

    from infra.recorders import PostgresFactoryWithOptions

    assert resolve_topic(env["PERSISTENCE_MODULE"]) is PostgresFactoryWithOptions


def test_smtp_is_verified_against_the_configured_ca(tmp_path: Path) -> None:
    transport = SmtpTransport("smtp://mail.internal:587?starttls=1", ca_file=None)
    assert transport.starttls and transport.context().verify_mode.name == "CERT_REQUIRED"
    assert transport.context().check_hostname
    missing = tmp_path / "missing.pem"
    with pytest.raises(FileNotFoundError):
        SmtpTransport("smtps://mail.internal", ca_file=missing).context()


def test_cli_refuses_a_plaintext_link_in_production_with_exit_2_and_one_json_error(
    tmp_path: Path,
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    shown = subprocess.run(
        [GIFTCARDS, "--json", "liability"],
        env={**clean, **secure(tmp_path, GIFTCARDS_SMTP_URL="smtp://mail.internal:25")},
        capture_output=True, check=False, timeout=60,
    )
    assert shown.returncode == 2, shown.stderr
    error = orjson.loads(shown.stdout)
    assert "GIFTCARDS_SMTP_URL" in error["error"]["message"], error
    assert not (tmp_path / "var").exists(), "nothing made before the refusal"
