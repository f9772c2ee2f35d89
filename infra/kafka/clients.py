"""The one place Kafka clients are built: each producer, consumer and admin client of the
service takes its brokers and security (SASL_SSL, SCRAM, CA, host name checked) from a KafkaLink."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from infra.config import ConfigError, KafkaLink

# A bare `host:port[,…]` is a plaintext link: the dev and test tools' brokers. The service's
# own processes pass Settings.kafka_link, which production only allows over SASL_SSL.
Link = KafkaLink | str


def options(link: Link) -> dict[str, Any]:
    """kafka-python's connection options for `link` (the same for every kind of client)."""
    if isinstance(link, str):
        return {"bootstrap_servers": link}
    security = link.security
    if security.protocol == "PLAINTEXT":
        return {"bootstrap_servers": link.bootstrap}
    return {
        "bootstrap_servers": link.bootstrap,
        "security_protocol": security.protocol,
        "sasl_mechanism": security.sasl_mechanism,
        "sasl_plain_username": security.username,
        "sasl_plain_password": security.password,
        "ssl_cafile": None if security.ca_file is None else str(security.ca_file),
        # A certificate signed by the CA for another host is refused too.
        "ssl_check_hostname": True,
    }


def bootstrap_of(link: Link) -> str:
    return link if isinstance(link, str) else link.bootstrap


# A topic is created by `ensure_topics` with its contract's settings, never by using it: a
# broker that creates topics on first use would give one its defaults (a week's retention for
# the events topic) when a consumer started before the relay.
NO_AUTO_CREATE = {"allow_auto_create_topics": False}


def producer(link: Link, **settings: Any) -> KafkaProducer:
    made = KafkaProducer(**options(link), **{**NO_AUTO_CREATE, **settings})
    _metadata_asks_no_creation(made._metadata, settings)
    return made


def consumer(link: Link, **settings: Any) -> KafkaConsumer:
    made = KafkaConsumer(**options(link), **{**NO_AUTO_CREATE, **settings})
    _metadata_asks_no_creation(made._client.cluster, settings)
    return made


def _metadata_asks_no_creation(cluster: Any, settings: dict[str, Any]) -> None:
    """kafka-python 3.0.12 builds its cluster metadata without the client's
    `allow_auto_create_topics`, so its requests always ask the broker to create a missing
    topic: the setting is given to the metadata itself (a test pins the behaviour)."""
    cluster.config["allow_auto_create_topics"] = settings.get(
        "allow_auto_create_topics", NO_AUTO_CREATE["allow_auto_create_topics"])


def admin(link: Link, **settings: Any) -> KafkaAdminClient:
    """Connects at once (every process of the service builds one first, to create its topics):
    a broker that refuses this link's TLS or credentials raises KafkaLinkError."""
    with diagnosed(link):
        return KafkaAdminClient(**options(link), **settings)


class KafkaLinkError(ConfigError):
    """The brokers answer but refuse this link (certificate, host name, credentials, protocol):
    a setting to change, not a fault to wait out."""


REFUSED_CREDENTIALS = (
    "GIFTCARDS_KAFKA_SASL_USERNAME / GIFTCARDS_KAFKA_SASL_PASSWORD: the brokers refused the "
    "credentials"
)
# What kafka-python logs when a connection fails, and the setting each refusal points to.
REFUSALS = (
    (("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "Hostname mismatch"),
     "GIFTCARDS_KAFKA_CA_FILE: the brokers' certificate is not trusted for their address"),
    (("Authentication failed", "SaslAuthenticationFailed"), REFUSED_CREDENTIALS),
    (("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure"),
     "GIFTCARDS_KAFKA_SECURITY_PROTOCOL: the brokers do not speak it on this port"),
    (("UnsupportedSaslMechanism", "IllegalSaslState"),
     "GIFTCARDS_KAFKA_SASL_MECHANISM: the brokers do not accept it"),
)


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(record.getMessage())


def _dropped_after_handshake(link: Link, messages: list[str]) -> bool:
    """Kafka answers a failed SCRAM exchange by closing the connection, which kafka-python
    reports as a lost connection of a broker whose version it had already read (TLS and the
    version request succeeded: only authentication comes between). Twice, so that one broker
    restarting in between is not taken for a refusal."""
    if isinstance(link, str) or link.security.protocol != "SASL_SSL":
        return False
    lost = [m for m in messages if "Connection lost" in m and "broker_version=(" in m]
    return len(lost) >= 2


@contextlib.contextmanager
def diagnosed(link: Link) -> Iterator[None]:
    """A bootstrap that fails because the brokers refused the link (rather than being down)
    raises KafkaLinkError naming the setting; kafka-python itself only times out, retrying a
    refusal that no retry can cure. Its own connection errors say which it was."""
    failures = _Failures()
    library = logging.getLogger("kafka")
    library.addHandler(failures)
    try:
        yield
    except KafkaError as error:
        for message in reversed(failures.messages):
            for words, setting in REFUSALS:
                if any(word in message for word in words):
                    raise KafkaLinkError(
                        f"{setting} ({bootstrap_of(link)}: {message[:300]})"
                    ) from error
        if _dropped_after_handshake(link, failures.messages):
            raise KafkaLinkError(
                f"{REFUSED_CREDENTIALS} ({bootstrap_of(link)}: the brokers completed TLS and "
                "answered, then closed every connection at authentication)"
            ) from error
        raise
    finally:
        library.removeHandler(failures)
