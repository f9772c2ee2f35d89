"""The one place Kafka clients are built: each producer, consumer and admin client of the
service takes its brokers and security (SASL_SSL, SCRAM, CA, host name checked) from a KafkaLink."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from infra.config import KafkaLink

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


def producer(link: Link, **settings: Any) -> KafkaProducer:
    return KafkaProducer(**options(link), **settings)


def consumer(link: Link, **settings: Any) -> KafkaConsumer:
    return KafkaConsumer(**options(link), **settings)


def admin(link: Link, **settings: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**options(link), **settings)
