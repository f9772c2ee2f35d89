"""Sections (a) naive per-command transactions, (b) checkout end to end, (c) raw Kafka."""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from application.commands import PurchaseCard, RedeemCard
from bench.common import Ctx, Row, timed
from bench.cpu import machine_busy
from bench.results import B_CORES
from consumers.checkout import CheckoutConsumer
from consumers.delivery import DeliveryWorker
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.topics import Topics
from infra.mail.transport import MaildirTransport, read_maildir
from infra.runtime import tune_gc

AT = "2026-01-12T09:00:00Z"
# One consumer process per core, as deployed (one `giftcards consume checkout` per core, one
# group): the like-for-like of e, whose API runs one process per core.
PROCESSES = os.cpu_count() or 1


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
    with machine_busy() as busy, timed() as elapsed:
        for i in range(pairs):
            code = app.purchase(PurchaseCard(
                market="FR", amount=5000, payment_method="card", buyer_id="c", order_id=f"o{i}",
            )).code
            assert code is not None  # a new order: its code is shown
            app.redeem(RedeemCard(
                code=code, market="FR", order_id=f"s{i}", order_total=3000, source="bench",
            ))
    service.close()
    return Row("a. naive: 1 command / transaction", 2 * pairs, elapsed(), "purchase+redeem",
               busy=busy())


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
    count, seconds, busy, ctx.checkout_store = backlogs(ctx, phase)  # the relay's events
    return [Row("b. checkout consumer end to end", count, seconds, "backlog->store->results",
                busy=busy)]


def per_core(ctx: Ctx) -> list[Row]:
    """(b, one per core) The same backlogs worked off by one consumer process per core in one
    group. The clock starts before the backlog is produced (into a group already settled, so
    no member starts early): the production is counted against the consumers."""
    count, seconds, busy, _ = backlogs(ctx, group_phase)
    return [Row(B_CORES, count, seconds,
                f"{PROCESSES} processes, one group: backlog->store->results", busy=busy)]


Phase = Callable[[Ctx, dict[str, str], Topics, list[bytes]], tuple[float, float | None]]


def backlogs(ctx: Ctx, work: Phase) -> tuple[int, float, float | None, dict[str, str]]:
    """Messages, seconds and the machine's busy share for purchases, then the redemptions of
    their e-mailed codes (every message accepted, each once), and the store's env."""
    half = ctx.size(20000, 2000) // 2
    _, env = ctx.fresh_service()
    topics = ctx.topics()
    bought, bought_busy = work(ctx, env, topics, [ordered(i) for i in range(half)])
    codes = delivered_codes(env)
    paid, paid_busy = work(ctx, env, topics, [completed(i, c) for i, c in enumerate(codes)])
    accepted = {reply["message_id"] for reply in map(orjson.loads,
                                                     read(ctx.bootstrap, topics.results, 2 * half))
                if reply["status"] == "accepted"}
    if len(accepted) != 2 * half:
        raise RuntimeError(f"only {len(accepted)} of {2 * half} checkout messages were accepted")
    busy = (None if bought_busy is None or paid_busy is None
            else (bought * bought_busy + paid * paid_busy) / (bought + paid))
    return 2 * half, bought + paid, busy, env


def phase(ctx: Ctx, env: dict[str, str], topics: Topics, values: list[bytes]
          ) -> tuple[float, float | None]:
    """Seconds (and the machine's busy share) for a fresh consumer (group joined) to work off
    `values` put in the topic."""
    produce(ctx.bootstrap, topics.checkout, values)
    service = build(load_settings(env))
    consumer = CheckoutConsumer(service.app, ctx.bootstrap, topics)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        if not consumer.positioned.wait(timeout=60):
            raise RuntimeError("the checkout consumer did not join its group")
        with machine_busy() as busy, timed() as elapsed:
            deadline = time.monotonic() + 600
            while consumer.handled < len(values) and time.monotonic() < deadline:
                time.sleep(0.005)
        if consumer.handled < len(values):
            raise RuntimeError("the checkout consumer did not finish its backlog")
        return elapsed(), busy()
    finally:
        stop.set()
        thread.join()
        service.close()


def group_phase(ctx: Ctx, env: dict[str, str], topics: Topics, values: list[bytes]
                ) -> tuple[float, float | None]:
    """Seconds for PROCESSES consumers, each in its own process and holding its share of the
    partitions, to work off `values` produced after the clock started."""
    spawn = multiprocessing.get_context("spawn")
    handled = spawn.Array("q", PROCESSES)  # each member's messages out and committed
    held = spawn.Array("q", PROCESSES)  # each member's partitions, once positioned
    stop = spawn.Event()
    members = [spawn.Process(target=member, args=(env, ctx.bootstrap, topics, n, handled, held,
                                                  stop), daemon=True)
               for n in range(PROCESSES)]
    for process in members:
        process.start()
    try:
        settled(held, len(partitions(ctx.bootstrap, topics.checkout)), members)
        with machine_busy() as busy, timed() as elapsed:
            produce(ctx.bootstrap, topics.checkout, values)
            deadline = time.monotonic() + 600
            while sum(handled[:]) < len(values) and time.monotonic() < deadline:
                time.sleep(0.005)
        if sum(handled[:]) < len(values):
            raise RuntimeError("the checkout consumers did not finish their backlog")
        return elapsed(), busy()
    finally:
        stop.set()
        for process in members:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()


def partitions(bootstrap: str, topic: str) -> set[int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return set(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


def settled(held: Any, total: int, members: Sequence[multiprocessing.process.BaseProcess]
            ) -> None:
    """Until every member holds a share of the partitions and together they hold them all,
    unchanged for a second (a member joining later would move partitions mid-run)."""
    deadline, since = time.monotonic() + 90, None
    while time.monotonic() < deadline:
        if any(not process.is_alive() for process in members):
            raise RuntimeError("a checkout consumer process died while joining its group")
        shares = list(held)
        if all(shares) and sum(shares) == total:
            since = since or time.monotonic()
            if time.monotonic() - since >= 1.0:
                return
        else:
            since = None
        time.sleep(0.05)
    raise RuntimeError(f"the checkout consumers did not settle their group: {list(held)}")


def member(env: dict[str, str], bootstrap: str, topics: Topics, n: int, handled: Any,
           held: Any, stop: Any) -> None:
    """One consumer process of group_phase: its counts reported through shared memory."""
    tune_gc()  # as the CLI process it stands for
    service = build(load_settings(env))
    consumer = CheckoutConsumer(service.app, bootstrap, topics, instance_id=f"bench-{n}")
    stopping = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        while not stop.wait(0.005):
            handled[n] = consumer.handled
            # Read off the consumer's thread: a count, for the parent's wait, not a decision.
            held[n] = len(consumer.consumer.assignment()) if consumer.positioned.is_set() else 0
    finally:
        stopping.set()
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
    return [naive(ctx), *end_to_end(ctx), *per_core(ctx), *raw_kafka(ctx)]
