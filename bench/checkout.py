"""Sections (a) naive per-command transactions, (b) checkout end to end, (c) raw Kafka."""

from __future__ import annotations

import threading
import time

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.common import Ctx, Row, timed
from consumers.checkout import CheckoutConsumer
from infra.bootstrap import build
from infra.config import load_settings

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
            "buyer": {"customer_id": f"cust-{i % 97}"},
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
            code = app.purchase(
                market="FR", amount=5000, payment_method="card", buyer_id="c", order_id=f"o{i}"
            )["code"]
            app.redeem(code=code, market="FR", order_id=f"s{i}", order_total=3000)
    service.close()
    return Row("a. naive: 1 command / transaction", 2 * pairs, elapsed(), "purchase+redeem")


class Mailbox:
    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def deliver(self, card_id: str, code: str, buyer_subject: str | None) -> None:
        self.codes[card_id] = code


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
    """(b) Messages in the topic -> store -> results out: purchases, then their redemptions."""
    half = ctx.size(20000, 2000) // 2
    _, env = ctx.fresh_service()
    topics = ctx.topics()
    mailbox, stop = Mailbox(), threading.Event()
    holder: list[CheckoutConsumer] = []

    def consume() -> None:
        service = build(load_settings(env))
        consumer = CheckoutConsumer(service.app, ctx.bootstrap, topics, mailer=mailbox)
        holder.append(consumer)
        consumer.run(stop)
        service.close()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    # Throughput, not start-up: the clock starts once the consumer has joined its group.
    deadline = time.monotonic() + 60
    while not (holder and holder[0].positioned.wait(timeout=0.1)):
        if time.monotonic() > deadline:
            raise RuntimeError("the checkout consumer did not join its group")
    purchases = [ordered(i) for i in range(half)]
    with timed() as elapsed:
        produce(ctx.bootstrap, topics.checkout, purchases)
        read(ctx.bootstrap, topics.results, half)
        codes = list(mailbox.codes.values())
        produce(ctx.bootstrap, topics.checkout, [completed(i, c) for i, c in enumerate(codes)])
        read(ctx.bootstrap, topics.results, 2 * half)
    stop.set()
    thread.join()
    ctx.checkout_store = env
    return [Row("b. checkout consumer end to end", 2 * half, elapsed(), "topic->store->results")]


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
