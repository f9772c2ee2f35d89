"""The service in production over encrypted, authenticated links only: a Kafka broker that
speaks SASL_SSL (SCRAM-SHA-512 user made by Kafka's own storage tool), a PostgreSQL with
ssl = on and TLS-only logins, an SMTP server that requires STARTTLS, all with certificates this
test makes. A purchase is relayed to Kafka and its code e-mailed; a wrong CA, a wrong password
or a plaintext URL each stop the process at start, naming the setting, with nothing done."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from kafka import TopicPartition

from dev import kafka_dev, tls_dev
from infra.config import load_settings
from infra.kafka import clients
from infra.kafka.topics import Topics
from tests.faults.harness import PrivateKafka, PrivatePostgres
from tests.mail.inbox import SmtpServer, code_in, message_parts

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "giftcards-svc", secrets.token_urlsafe(16)


@dataclass
class Links:
    ca: tls_dev.Ca
    other_ca: tls_dev.Ca
    kafka: PrivateKafka
    postgres: PrivatePostgres
    smtp: SmtpServer
    security: kafka_dev.BrokerSecurity


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Links]:
    """One broker, one PostgreSQL and one mail server for the module (a broker takes ~20 s to
    start here); each test uses a database, a topic prefix and a data dir of its own."""
    root = tmp_path_factory.mktemp("secure-links")
    ca = tls_dev.make_ca(root / "ca")
    other_ca = tls_dev.make_ca(root / "other-ca", "someone-else-ca")
    certs = root / "certs"
    kafka_cert = tls_dev.issue(ca, certs, "kafka")
    keystore_password = secrets.token_urlsafe(12)
    security = kafka_dev.BrokerSecurity(
        ca_file=ca.cert, keystore=kafka_cert.pkcs12(keystore_password),
        keystore_password=keystore_password, users=((USER, PASSWORD),),
        broker_password=secrets.token_urlsafe(16),
    )
    # The PostgreSQL server user must read its certificate: the cluster copies it in.
    pg_cert = tls_dev.issue(ca, certs, "postgres")
    mail_cert = tls_dev.issue(ca, certs, "mail")
    (root / "smtp").mkdir()
    smtp = SmtpServer(root / "smtp", tls=(mail_cert.cert, mail_cert.key))
    with PrivateKafka(root / "kafka", security=security) as kafka, \
            PrivatePostgres(tls=pg_cert) as postgres:
        smtp.start()
        try:
            yield Links(ca, other_ca, kafka, postgres, smtp, security)
        finally:
            smtp.stop()


def fresh_database(links: Links, name: str) -> str:
    """A database of the test's own on the TLS-only cluster; its URL with verify-full."""
    with psycopg.connect(links.postgres.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return links.postgres.url.replace("/giftcards?", f"/{name}?")


def production_env(links: Links, tmp_path: Path, **more: str) -> dict[str, str]:
    name = f"tls_{secrets.token_hex(4)}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    return {
        **clean,
        "GIFTCARDS_ENV": "production",
        "GIFTCARDS_SECRET_KEY": secrets.token_urlsafe(48),
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_DATABASE_URL": fresh_database(links, name),
        # One PostgreSQL server, stated as such (the start check refuses it otherwise).
        "GIFTCARDS_DATABASE_REPLICATION": "single-node",
        "GIFTCARDS_TOPIC_PREFIX": f"{name}.",
        "GIFTCARDS_PARTITIONS": "2",
        "KAFKA_BOOTSTRAP_SERVERS": links.kafka.bootstrap,
        "GIFTCARDS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "GIFTCARDS_KAFKA_SASL_USERNAME": USER,
        "GIFTCARDS_KAFKA_SASL_PASSWORD": PASSWORD,
        "GIFTCARDS_KAFKA_CA_FILE": str(links.ca.cert),
        "GIFTCARDS_SMTP_URL": links.smtp.url,
        "GIFTCARDS_SMTP_CA_FILE": str(links.ca.cert),
        **more,
    }


def giftcards(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([GIFTCARDS, "--json", *args], env=env, cwd=ROOT,
                          capture_output=True, timeout=120, check=False)
    assert b"Traceback" not in done.stderr, done.stderr.decode()[-3000:]
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr.decode()[-3000:])
    return done.returncode, orjson.loads(lines[0])


def events_on_kafka(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every committed record of the events topic, read over the service's own link."""
    settings = load_settings(env)
    topic = Topics(settings.topic_prefix).events
    consumer = clients.consumer(settings.kafka_link, isolation_level="read_committed",
                                enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(p) < ends[p] for p in parts) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found += [orjson.loads(r.value) for r in records if r.value]
        return found
    finally:
        consumer.close()


def test_r7_a_purchase_is_relayed_and_its_code_mailed_over_tls_and_sasl_only(
    links: Links, tmp_path: Path
) -> None:
    env = production_env(links, tmp_path)
    status, card = giftcards(env, "purchase", "--market", "FR", "--amount", "50",
                             "--payment-method", "card", "--buyer-id", "cust-tls",
                             "--buyer-email", "alice@example.org", "--order-id", "tls-1")
    assert status == 0, card
    status, relayed = giftcards(env, "relay", "--once")
    assert status == 0 and relayed, relayed
    on_kafka = events_on_kafka(env)
    assert any(card["card_id"] in orjson.dumps(event).decode() for event in on_kafka), on_kafka
    status, delivered = giftcards(env, "deliver", "--once")
    assert status == 0, delivered
    mails = [m for m in links.smtp.wait_for(1, timeout=30)
             if message_parts(m)[0] == card["card_id"] and message_parts(m)[2] == "card"]
    assert mails and code_in(mails[0]) == card["code"]


def test_the_relay_refuses_to_start_on_a_broker_certificate_of_another_ca(
    links: Links, tmp_path: Path
) -> None:
    env = production_env(links, tmp_path, GIFTCARDS_KAFKA_CA_FILE=str(links.other_ca.cert))
    status, error = giftcards(env, "relay")  # long-running: it must not wait forever
    assert status == 2, error
    assert error["error"]["code"] == "invalid_configuration"
    assert "GIFTCARDS_KAFKA_CA_FILE" in error["error"]["message"], error
    assert nothing_done(links, env)


def test_the_relay_refuses_to_start_on_a_wrong_kafka_password(
    links: Links, tmp_path: Path
) -> None:
    env = production_env(links, tmp_path, GIFTCARDS_KAFKA_SASL_PASSWORD="not-the-password")
    status, error = giftcards(env, "relay")
    assert status == 2, error
    assert "GIFTCARDS_KAFKA_SASL_PASSWORD" in error["error"]["message"], error
    assert "not-the-password" not in error["error"]["message"]
    assert nothing_done(links, env)


@pytest.mark.parametrize(("setting", "wrong"), [
    ("GIFTCARDS_KAFKA_SASL_PASSWORD", "not-the-password"),
    ("GIFTCARDS_SMTP_CA_FILE", "other-ca"),
])
def test_serve_refuses_to_start_on_a_link_that_is_refused(
    links: Links, tmp_path: Path, setting: str, wrong: str
) -> None:
    value = str(links.other_ca.cert) if wrong == "other-ca" else wrong
    env = production_env(links, tmp_path, **{setting: value})
    status, error = giftcards(env, "serve", "--without-api")
    assert status == 2, error
    assert setting in error["error"]["message"], error
    assert wrong not in error["error"]["message"], "no secret echoed"


def test_deliver_refuses_a_mail_server_certificate_of_another_ca_and_keeps_the_code_pending(
    links: Links, tmp_path: Path
) -> None:
    env = production_env(links, tmp_path)
    status, card = giftcards(env, "purchase", "--market", "FR", "--amount", "50",
                             "--payment-method", "card", "--buyer-id", "cust-tls",
                             "--buyer-email", "bob@example.org", "--order-id", "tls-2")
    assert status == 0, card
    before = len(links.smtp.received())
    status, error = giftcards({**env, "GIFTCARDS_SMTP_CA_FILE": str(links.other_ca.cert)},
                              "deliver", "--once")
    assert status == 2 and "GIFTCARDS_SMTP_CA_FILE" in error["error"]["message"], error
    assert "not trusted" in error["error"]["message"], error
    assert len(links.smtp.received()) == before
    status, failed = giftcards(env, "deliveries", "failed")
    assert status == 0 and card["card_id"] not in orjson.dumps(failed).decode(), failed
    status, delivered = giftcards(env, "deliver", "--once")  # the right CA: it goes out
    assert status == 0 and delivered["delivered"] >= 1, delivered


def test_a_mail_server_without_starttls_is_refused_at_start(tmp_path: Path) -> None:
    from infra.config import ConfigError
    from infra.mail.transport import SmtpTransport

    (tmp_path / "smtp").mkdir()
    plain = SmtpServer(tmp_path / "smtp")  # offers no STARTTLS
    plain.start()
    try:
        with pytest.raises(ConfigError, match="does not offer STARTTLS"):
            SmtpTransport(f"{plain.url}?starttls=1").check()
    finally:
        plain.stop()


@pytest.mark.parametrize("command", [
    ("purchase", "--market", "FR", "--amount", "50", "--payment-method", "card",
     "--buyer-id", "cust-tls"),
    ("relay",),  # long-running: waits for a database that is away, not for a wrong setting
])
def test_the_service_refuses_a_postgres_certificate_of_another_ca(
    links: Links, tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = production_env(links, tmp_path)
    env["GIFTCARDS_DATABASE_URL"] = env["GIFTCARDS_DATABASE_URL"].replace(
        str(links.ca.cert), str(links.other_ca.cert))
    status, error = giftcards(env, *command)
    assert status == 2 and error["error"]["code"] == "invalid_configuration", error
    assert "GIFTCARDS_DATABASE_URL" in error["error"]["message"], error
    assert "certificate verify failed" in error["error"]["message"], error


def test_production_refuses_plaintext_postgres_even_where_the_server_has_tls(
    links: Links, tmp_path: Path
) -> None:
    env = production_env(links, tmp_path)
    plain = env["GIFTCARDS_DATABASE_URL"].split("?")[0]
    status, error = giftcards({**env, "GIFTCARDS_DATABASE_URL": plain}, "relay")
    assert status == 2 and "GIFTCARDS_DATABASE_URL" in error["error"]["message"], error
    assert not Path(env["GIFTCARDS_DATA_DIR"]).exists(), "nothing made before the refusal"


def test_the_postgres_server_takes_no_plaintext_login(links: Links) -> None:
    """The cluster the tests above use is TLS-only: a plaintext login is refused by it."""
    plain = links.postgres.url.split("?")[0] + "?sslmode=disable"
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(plain, connect_timeout=5).close()
    assert "no pg_hba.conf entry" in str(refused.value) and "no encryption" in str(refused.value)


def test_the_mail_server_takes_no_mail_before_starttls(links: Links) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", links.smtp.port, timeout=10) as smtp:
        code, _ = smtp.mail("a@example.org")
    assert code == 530, "the server requires STARTTLS first"


def nothing_done(links: Links, env: dict[str, str]) -> bool:
    """No topic of the test's prefix was created: the refusal came before any write."""
    admin = clients.admin(links.security.link(links.kafka.bootstrap, USER))
    try:
        prefix = env["GIFTCARDS_TOPIC_PREFIX"]
        return not [t for t in admin.list_topics() if t.startswith(prefix)]
    finally:
        admin.close()
