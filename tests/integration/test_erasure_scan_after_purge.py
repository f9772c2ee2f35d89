"""P2: the erasure scan, after `gdpr erase` and again after `gdpr purge` with the clock moved past
each retention period, over the places the first scan does not reach: `/metrics` of a real API
process, a `gdpr export` and an evidence pack (`audit export --period`) made before the erasure,
the outbox and the dead letters (their sealed originals opened with the service's own vault).
0 hits outside what the data-protection page says is kept, stage by stage."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from application.commands import PurchaseCard
from application.operators import Operators
from application.privacy import Privacy
from composition.bootstrap import build_delivery_worker
from consumers.checkout_processor import CheckoutProcessor
from entrypoints.cli.gdpr import run_purge
from infra.bootstrap import Service
from infra.kafka.cloudevents import DEFAULT
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from infra.vault_keys import ERASED
from projections.runner import Projector
from projections.sources import sync_store
from tests.conftest import FixedClock
from tests.e2e.operator_keys import KEY
from tests.e2e.test_gdpr_cli import cli
from tests.e2e.test_http_api import start_api
from tests.integration.test_checkout_consumer import ordered
from tests.integration.test_dead_letters import Polled
from tests.integration.test_erasure_scan_everywhere import (
    ADDRESS,
    CUSTOMER,
    EMAIL,
    MESSAGE,
    NAME,
    ORDER,
    PHONE,
    READ_TIMEOUT_S,
    file_places,
    forms,
    store_places,
    topic_places,
    topics,  # noqa: F401  (a fixture)
)
from tests.operator_register import FOUNDER, enrol

NOW = "2026-01-12T10:00:00Z"  # the fixture clock's start, for the CLI and API processes
PERIOD = "2026-01"
REFUSED_ID = "m-zelie-refused"
Kept = dict[tuple[str, str], str]
PERSONAL = (EMAIL, NAME, PHONE, ADDRESS, MESSAGE)
# What the page says stays, whatever the stage (docs/data-protection.md, "Where personal data
# lives"), by (kind of place, needle): why.
ALWAYS: Kept = {
    # By table, so that any other table keeping the customer id fails (the events' tables
    # included: they name a store id whose link the erasure deleted). SQLite's files hold
    # those three tables too.
    **{(place, CUSTOMER): "the request register, its outcomes and the access log name the "
       "subject until their own retention" for place in (
           "table gdpr_requests.subject_id", "table gdpr_request_outcomes.outcome",
           "table pii_access_log.subject_id",
           "file giftcards.sqlite3", "file giftcards.sqlite3-wal")},
    ("store", ORDER): "order ids stay for the accounts (P2)",
    ("erased-export", CUSTOMER): "an export names the subject id the operator asked for",
    ("erased-export", ORDER): "the order ids kept for the accounts are what the service still "
                              "holds of the subject: an export shows them",
    ("store", REFUSED_ID): "a message id stays with its stored reply (R3: answered once)",
    ("topic", "pseudonym"): "records published before the erasure keep the keyed pseudonym "
                            "for the topic's retention (giftcard.events: the audit log)",
    **{("export", needle): "a subject export is the subject's own copy (art. 15/20), handed "
       "to them; the service writes none" for needle in (*PERSONAL, CUSTOMER, ORDER, "code")},
}
# Until the day's dead-letter key is destroyed (GIFTCARDS_RETENTION_DEAD_LETTER_DAYS), the
# service's vault still opens a refused input's original: not reached by subject.
SEALED_ORIGINAL: Kept = {
    ("dead letter opened", needle): "the original sealed under the day's dead-letter key, "
    "until retention destroys that key" for needle in (*PERSONAL, CUSTOMER, ORDER, REFUSED_ID)}


def kind_of(place: str) -> str:
    first = place.split(" ", 1)[0]
    if place.startswith("dead letter opened"):
        return "dead letter opened"
    return {"table": "store", "file": "store"}.get(first, first)


def hits(places: list[tuple[str, bytes]], needles: dict[str, list[bytes]], kept: Kept
         ) -> list[str]:
    return [f"{place}: {name}" for place, content in places
            for name, encodings in needles.items()
            if (kind_of(place), name) not in kept and (place, name) not in kept
            and any(f in content for f in encodings)]


def refused_input() -> bytes:
    """An order carrying the subject's data that the consumer refuses (a bad amount)."""
    message = json.loads(ordered(REFUSED_ID, ORDER, buyer={"email": EMAIL, "name": NAME},
                                 message=MESSAGE))
    message["amount"] = "x"
    return json.dumps(message).encode()


def dead_letter_originals(service: Service, bootstrap: str, topic: str
                          ) -> Iterator[tuple[str, bytes]]:
    """Each dead letter's sealed original, as the service's own vault opens it today."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while any(consumer.position(p) < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"{topic} not readable"
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    token = orjson.loads(record.value)["original_sealed"]
                    owner = service.vault.owner_of(token)
                    clear = service.vault.open(owner, token) if owner is not None else ERASED
                    opened = clear.encode() if clear == ERASED else base64.b64decode(clear)
                    yield f"dead letter opened {record.partition}/{record.offset}", opened
    finally:
        consumer.close()


def test_p2_after_erasure_and_each_purge_metrics_exports_packs_outbox_and_dead_letters_are_clean(
    service: Service, env_for: dict[str, str], clock: FixedClock, kafka_bootstrap: str,
    topics: Topics, tmp_path: Path,  # noqa: F811  (the fixture)
) -> None:
    app, start = service.app, clock.now
    card = app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id=CUSTOMER, buyer_email=EMAIL,
        buyer_name=NAME, message=MESSAGE, order_id=ORDER,
    ))
    worker = build_delivery_worker(service)
    for _ in range(10):
        if not worker.drain():
            break
    views = Projector(service.db)
    sync_store(app, views)
    # A refused input with the subject's data: its dead letter goes out as the consumer sends it.
    processor = CheckoutProcessor(app, topics.checkout)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for key, letter in processor.process(0, [Polled(0, refused_input())]).dead:
        encoded = key.encode() if key else None
        producer.send(topics.dead_letters, key=encoded, value=orjson.dumps(letter),
                      headers=DEFAULT.dead_letter_headers(letter, encoded))
    producer.flush()
    producer.close()

    # Before the erasure: an export of the subject and the month's evidence pack.
    enrol(service, "dpo-1", "dpo")
    keys = {name: Operators(app).add(name, role, FOUNDER)["key"]
            for name, role in (("sam", "support"), ("aud", "auditor"))}
    env = {**env_for, "GIFTCARDS_NOW": NOW, "PATH": "/usr/bin:/bin", KEY: keys["sam"]}
    status, exported = cli(env, "gdpr", "export", CUSTOMER, "--operator", "sam")
    assert status == 0, exported
    assert cli(env, "audit", "checkpoint")[0] == 0
    pack = tmp_path / "pack"
    status, packed = cli({**env, KEY: keys["aud"]}, "audit", "export", "--period", PERIOD,
                         "--market", "FR", "--out", str(pack), "--operator", "aud")
    assert status == 0 and packed["cards"] == 1, packed
    earlier = [("export gdpr", json.dumps(exported).encode()), *file_places(pack, "pack")]
    # And a card whose code e-mail is still in the outbox when the erasure comes.
    pending = app.purchase(PurchaseCard(
        market="FR", amount=2000, payment_method="card", buyer_id=CUSTOMER, buyer_email=EMAIL,
        buyer_name=NAME, message=MESSAGE, order_id=f"{ORDER}-pending",
    ))

    # What the topics and views carry: the pseudonym of the store id (the erasure ends the link).
    pseudonym = service.pseudonyms.subject(str(service.vault.resolve_store_id(CUSTOMER)))
    relay = Relay(service, kafka_bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        relay.drain()
        privacy = Privacy(service)
        privacy.open_request(CUSTOMER, "erasure", privacy.today(), "req-scan")
        privacy.erase([CUSTOMER], "req-scan", "dpo-1")
        relay.drain()
    finally:
        relay.close()
    sync_store(app, views)
    assert worker.delivered == 1  # the second code e-mail waited in the outbox
    for _ in range(10):  # the outbox after the erasure: nothing of them goes out
        if not worker.drain():
            break
    assert worker.delivered == 1, "a code e-mail went to an erased subject"
    # An export after the erasure: only the id the operator typed, nothing readable of them.
    status, after = cli(env, "gdpr", "export", CUSTOMER, "--operator", "sam")
    assert status == 0, after
    earlier.append(("erased-export gdpr", json.dumps(after).encode()))

    needles = {text: forms(text) for text in (*PERSONAL, CUSTOMER, ORDER, REFUSED_ID)}
    needles["code"] = forms(card.code)
    needles["pending code"] = forms(pending.code)
    needles["pseudonym"] = forms(pseudonym)
    data_dir = service.settings.data_dir
    process_env = {**env_for, "GIFTCARDS_NOW": NOW, "PATH": os.environ["PATH"]}
    api_log = tmp_path / "api.log"
    process, url = start_api(process_env, api_log)

    def places() -> list[tuple[str, bytes]]:
        metrics = httpx.get(url + "/metrics", timeout=30)
        assert metrics.status_code == 200 and b"giftcards_" in metrics.content
        return [*store_places(service), *topic_places(kafka_bootstrap, topics),
                *dead_letter_originals(service, kafka_bootstrap, topics.dead_letters),
                *file_places(data_dir / "mail", "maildir"),
                *file_places(service.settings.checkpoint_dir, "checkpoints"),
                ("metrics", metrics.content), ("logs api", api_log.read_bytes()), *earlier]

    try:
        # The scan sees what it looks for: the earlier copies and the sealed original hold it.
        found = places()
        assert {kind_of(p) for p, _ in found} >= {
            "store", "topic", "dead letter opened", "maildir", "metrics", "logs", "export",
            "erased-export", "pack"}
        assert any(EMAIL.encode() in c for p, c in found if p.startswith("dead letter opened"))
        assert any(EMAIL.encode() in c for p, c in found if p.startswith("export"))
        assert any(p == "pack events.jsonl" and c for p, c in found)
        assert hits(found, needles, ALWAYS | SEALED_ORIGINAL) == []
        # Past each retention period in turn, `gdpr purge`: what the page says ends, ends.
        settings = service.settings
        for label, days in (
            ("dead letters", settings.retention_dead_letter_days + 1),
            ("access log", settings.retention_access_log_days + 1),
            ("cards", 365 * settings.retention_card_years + 2),
            ("requests and fraud data", 365 * max(settings.retention_request_years,
                                                  settings.retention_fraud_years) + 2),
        ):
            clock.now = start + timedelta(days=days)
            report = run_purge(service)
            found = places()
            assert hits(found, needles, ALWAYS) == [], (label, report)
            opened = [c for p, c in found if p.startswith("dead letter opened")]
            assert opened and all(c == ERASED.encode() for c in opened), label
    finally:
        process.terminate()
        process.wait(timeout=30)
