"""Sections (a) naive per-command transactions, (b) checkout end to end, (c) raw Kafka."""

from __future__ import annotations

import re
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from application.commands import PurchaseCard, RedeemCard
from bench.common import Ctx, Row, timed
from consumers.checkout import CheckoutConsumer
from consumers.delivery import DeliveryWorker
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.topics import Topics
from infra.mail.transport import MaildirTransport, read_maildir

AT = "2026-01-12T09:00:00Z"


def ordered(i: int) -> bytes:
    return orjson.dumps(
        {
            "message_id": f"buy-{i}",
            "type": "GiftCardOrdered",
            "occurred_at": AT,
            "order_id": f"order-{i}",
            "market": "FR",
            "amount": 5000,
            "currency": "EUR",
            "payment_method": "card",
            "buyer": {"customer_id": f"cust-{i % 97}", "email": f"cust-{i % 97}@example.org"},
        }
    )


def completed(i: int, code: str) -> bytes:
    return orjson.dumps(
        {
            "message_id": f"pay-{i}",
            "type": "CheckoutCompleted",
            "occurred_at": AT,
            "order_id": f"shop-{i}",
            "market": "FR",
            "customer_id": f"cust-{i % 97}",
            "order_total": 3000,
            "currency": "EUR",
            "gift_card_code": code,
        }
    )


def naive(ctx: Ctx) -> Row:
    """(a) One command per transaction, as the CLI does: purchase then redeem, N pairs."""
    pairs = ctx.size(2000, 200)
    service, _ = ctx.fresh_service()
    app = service.app
    with timed() as elapsed:
        for i in range(pairs):
            code = app.purchase(PurchaseCard(
                market="FR", amount=5000, payment_method="card", buyer_id="c", order_id=f"o{i}",
            )).code
            assert code is not None  # a new order: its code is shown
            app.redeem(RedeemCard(
                code=code, market="FR", order_id=f"s{i}", order_total=3000, source="bench",
            ))
    service.close()
    return Row("a. naive: 1 command / transaction", 2 * pairs, elapsed(), "purchase+redeem")


def delivered_codes(env: dict[str, str]) -> list[str]:
    """The codes of the cards bought so far, e-mailed by the delivery worker (not timed)."""
    service = build(load_settings(env))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            worker = DeliveryWorker(service, MaildirTransport(Path(tmp), service.vault))
            while worker.drain():
                pass
            return [code_in(message) for message in read_maildir(Path(tmp), service.vault)
                    if ".card@" in str(message["Message-ID"])]
    finally:
        service.close()


def code_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    found = re.search(r"^Code: (\S+)$", body.get_content() if body else "", re.MULTILINE)
    if not found:
        raise RuntimeError(f"no code in {message['Message-ID']}")
    return found.group(1)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    for value in values:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()


def read(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
    consumer.seek_to_beginning()
    out: list[bytes] = []
    while len(out) < count:
        for records in consumer.poll(timeout_ms=500).values():
            out += [r.value for r in records]
    consumer.close()
    return out


def end_to_end(ctx: Ctx) -> list[Row]:
    """(b) A backlog in the topic -> store -> results out: purchases, then their redemptions.

    The input is produced before the clock starts and the results are read back after it
    stops, so the load generator does not share the consumer's interpreter while it works;
    the clock stops when the consumer has published (flushed) the last result."""
    half = ctx.size(20000, 2000) // 2
    _, env = ctx.fresh_service()
    topics = ctx.topics()
    seconds = phase(ctx, env, topics, [ordered(i) for i in range(half)])
    codes = delivered_codes(env)
    seconds += phase(ctx, env, topics, [completed(i, c) for i, c in enumerate(codes)])
    results = read(ctx.bootstrap, topics.results, 2 * half)
    accepted = sum(orjson.loads(r)["status"] == "accepted" for r in results)
    if accepted != 2 * half:
        raise RuntimeError(f"only {accepted} of {2 * half} checkout messages were accepted")
    ctx.checkout_store = env
    return [Row("b. checkout consumer end to end", 2 * half, seconds, "backlog->store->results")]


def phase(ctx: Ctx, env: dict[str, str], topics: Topics, values: list[bytes]) -> float:
    """Seconds for a fresh consumer (group joined) to work off `values` put in the topic."""
    produce(ctx.bootstrap, topics.checkout, values)
    service = build(load_settings(env))
    consumer = CheckoutConsumer(service.app, ctx.bootstrap, topics)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        if not consumer.positioned.wait(timeout=60):
            raise RuntimeError("the checkout consumer did not join its group")
        with timed() as elapsed:
            deadline = time.monotonic() + 600
            while consumer.handled < len(values) and time.monotonic() < deadline:
                time.sleep(0.005)
        if consumer.handled < len(values):
            raise RuntimeError("the checkout consumer did not finish its backlog")
        return elapsed()
    finally:
        stop.set()
        thread.join()
        service.close()


def raw_kafka(ctx: Ctx) -> list[Row]:
    """(c) kafka-python alone, same message sizes, idempotent producer with acks=all."""
    count = ctx.size(20000, 2000)
    topics = ctx.topics()
    values = [ordered(i) for i in range(count)]
    with timed() as produced:
        produce(ctx.bootstrap, topics.checkout, values)
    with timed() as consumed:
        read(ctx.bootstrap, topics.checkout, count)
    size = sum(map(len, values)) // count
    return [
        Row("c. raw kafka-python producer", count, produced(), f"{size} B/msg"),
        Row("c. raw kafka-python consumer", count, consumed(), "read_committed"),
    ]


def run(ctx: Ctx) -> list[Row]:
    return [naive(ctx), *end_to_end(ctx), *raw_kafka(ctx)]
