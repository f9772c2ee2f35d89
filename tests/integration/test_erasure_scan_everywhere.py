"""P2: after an erasure, a scan of every place the subject's data went (every table and view of
the store, the SQLite files, every topic the test owns, the maildir, the logs) finds none of
their e-mail, name, phone, address or message in any encoding, and their ids only where the
data-protection page says they are kept (and why). The subject is first seen by the store
after store ids: they buy, hold, redeem and try an unknown code, and after the erasure no
event, stream id or vault row names their customer id. A hit fails naming the place."""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from application.commands import AuthorizeHold, PurchaseCard, RedeemCard, VoidHold
from application.holds import Holds
from application.privacy import Privacy
from composition.bootstrap import build_delivery_worker
from dev.services import unique_topic_prefix
from domain.errors import DomainError
from domain.streams import CheckoutAttempts
from domain.subjects import DataSubject
from infra.bootstrap import Service
from infra.db import sqlite_path
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from projections.runner import Projector
from projections.sources import sync_store
from tests.operator_register import enrol

EMAIL, NAME = "zed.scanne@example.org", "Zélie Scannée"
PHONE, ADDRESS = "0612345678", "17 rue des Probes"
MESSAGE = f"Joyeux anniversaire ! Appelle-moi au {PHONE}, {ADDRESS}"
CUSTOMER, ORDER = "cust-zelie", "o-zelie-1"
READ_TIMEOUT_S = 30.0
ACCOUNTABILITY = ("the request register, its outcomes and the access log name the subject: "
                  "kept until their own retention (the proof the request was answered)")
# What the page says stays after an erasure, by (kind of place, or the place itself; needle):
# why. The customer id is allowed by table, so that any other table keeping it fails (the
# events' tables included: a customer first seen since store ids is named there by a store id
# whose link the erasure deleted). SQLite's files hold those three tables too.
KEPT = {
    **{(place, CUSTOMER): ACCOUNTABILITY for place in (
        "table gdpr_requests.subject_id", "table gdpr_request_outcomes.outcome",
        "table pii_access_log.subject_id",
        "file giftcards.sqlite3", "file giftcards.sqlite3-wal")},
    ("store", ORDER): "order ids stay for the accounts (P2)",
    ("topic", "pseudonym"): "records published before the erasure keep the keyed pseudonym "
                            "until the topic's retention; the erasure names no one",
}


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[Topics]:
    made = Topics(unique_topic_prefix())
    created = ensure_topics(kafka_bootstrap, made, partitions=1)
    yield made
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics(created)
    admin.close()


def forms(text: str) -> list[bytes]:
    """Plain, lowercase, base64, JSON-escaped, URL-encoded and hex."""
    raw = text.encode()
    escaped = json.dumps(text)[1:-1].encode()  # ASCII-only: \u00e9
    return list(dict.fromkeys([
        raw, text.lower().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw),
        escaped, urllib.parse.quote(text).encode(), urllib.parse.quote_plus(text).encode(),
        raw.hex().encode(),
    ]))


def store_places(service: Service) -> Iterator[tuple[str, bytes]]:
    """Every text or binary column of every table (views included), then SQLite's files."""
    db = service.db
    if db.is_postgres:
        columns = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN ('text', 'bytea', "
            "'character varying', 'json', 'jsonb')")
        for table, column in columns:
            values = db.execute(f'SELECT "{column}"::bytea FROM "{table}"')
            yield f"table {table}.{column}", b"\n".join(bytes(v) for (v,) in values if v)
        return
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for column in [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]:
            values = db.execute(f'SELECT CAST("{column}" AS BLOB) FROM "{table}"')
            yield f"table {table}.{column}", b"\n".join(bytes(v) for (v,) in values if v)
    path = sqlite_path(db.url)
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            yield f"file {file.name}", file.read_bytes()


def topic_places(bootstrap: str, topics: Topics) -> Iterator[tuple[str, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        for topic in sorted(consumer.topics()):
            if not topic.startswith(topics.prefix):
                continue
            partitions = [TopicPartition(topic, p)
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            chunks: list[bytes] = []
            deadline = __import__("time").monotonic() + READ_TIMEOUT_S
            while any(consumer.position(p) < ends[p] for p in partitions):
                assert __import__("time").monotonic() < deadline, f"{topic} not readable"
                for records in consumer.poll(timeout_ms=500).values():
                    for r in records:
                        chunks += [r.key or b"", r.value or b""] + [v for _, v in r.headers]
            yield f"topic {topic}", b"\n".join(chunks)
    finally:
        consumer.close()


def file_places(directory: Path, kind: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield f"{kind} {path.relative_to(directory)}", path.read_bytes()


def kind_of(place: str) -> str:
    first = place.split(" ", 1)[0]
    return {"table": "store", "file": "store"}.get(first, first)


def hits(places: Iterator[tuple[str, bytes]], needles: dict[str, list[bytes]]) -> list[str]:
    """`place: needle` for each needle found where the page does not say it is kept."""
    found = []
    for place, content in places:
        for name, encodings in needles.items():
            if (kind_of(place), name) in KEPT or (place, name) in KEPT:
                continue
            if any(form in content for form in encodings):
                found.append(f"{place}: {name}")
    return found


def test_p2_after_erasure_no_place_holds_the_subjects_data_outside_what_is_documented(
    service: Service, kafka_bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture,
) -> None:
    # The service's own logs at their most verbose (third-party DEBUG logs, such as
    # kafka-python's dump of each record sent, are the operator's choice and off by default).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="giftcards")
    app = service.app
    card = app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id=CUSTOMER, buyer_email=EMAIL,
        buyer_name=NAME, message=MESSAGE, order_id=ORDER,
    ))
    # Every other event that names a customer: a hold released, a redemption, a refusal, an
    # unknown code (the attempts streams are derived from the id the store keeps).
    holds = Holds(app)
    holds.authorize(AuthorizeHold(code=card.code, market="FR", order_id="o-zelie-hold",
                                  order_total=1000, customer_id=CUSTOMER, source="test"))
    holds.void(VoidHold(order_id="o-zelie-hold"))
    with pytest.raises(DomainError):  # another market's: a GiftCardRedemptionRefused
        app.redeem(RedeemCard(code=card.code, market="DE", order_id="o-zelie-de",
                              order_total=1000, customer_id=CUSTOMER, source="test"))
    app.redeem(RedeemCard(code=card.code, market="FR", order_id="o-zelie-pay",
                          order_total=1000, customer_id=CUSTOMER, source="test"))
    with pytest.raises(DomainError):  # a CheckoutUnknownCodeTried
        app.redeem(RedeemCard(code="NOPE-NOPE-NOPE", market="FR", order_id="o-zelie-guess",
                              order_total=100, customer_id=CUSTOMER, source="test"))
    stored_as = service.vault.resolve_store_id(CUSTOMER)
    assert stored_as is not None and stored_as != CUSTOMER
    pseudonym = service.pseudonyms.subject(stored_as)  # what the topics and views carry
    worker = build_delivery_worker(service)  # the default transport: the maildir
    for _ in range(10):
        if not worker.drain():
            break
    assert worker.delivered == 1
    views = Projector(service.db)
    sync_store(app, views)
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        relay.drain()
        privacy = Privacy(service)
        enrol(service, "dpo-1", "dpo")
        privacy.open_request(CUSTOMER, "erasure", privacy.today(), "req-scan")
        privacy.erase([CUSTOMER], "req-scan", "dpo-1")
        relay.drain()
    finally:
        relay.close()
    sync_store(app, views)
    assert service.vault.resolve_store_id(CUSTOMER) is None  # the link is gone

    needles = {text: forms(text) for text in (EMAIL, NAME, PHONE, ADDRESS, MESSAGE, CUSTOMER,
                                              ORDER, card.code)}
    needles["pseudonym"] = forms(pseudonym)
    data_dir = service.settings.data_dir
    places = [*store_places(service), *topic_places(kafka_bootstrap, topics),
              *file_places(data_dir / "mail", "maildir"),
              ("logs", caplog.text.encode())]
    assert {kind_of(p) for p, _ in places} >= {"store", "topic", "maildir", "logs"}
    # The scan sees what it looks for: before the page's exceptions, the ids are found.
    assert any(CUSTOMER.encode() in c for p, c in places if p.startswith("table"))
    # Streams derived from a customer (their attempts, their rights) are derived from the
    # store id: none is the uuid5 anyone knowing the customer id computes.
    derived = [str(CheckoutAttempts.id_for(CUSTOMER)), str(DataSubject.id_for(CUSTOMER)),
               str(CheckoutAttempts.window_id(CUSTOMER, app.markets.guessing.window_start(
                   app.now())))]
    needles.update({f"stream {i}": forms(i) for i in derived})
    assert any(pseudonym.encode() in c for p, c in places if p.startswith("topic"))
    assert hits(iter(places), needles) == []
