"""Section (d): relay events/s, publishing what section (b) stored, next to a raw producer
sending the very same records (key, envelope bytes, headers): the "same message sizes" baseline."""

from __future__ import annotations

from kafka import KafkaProducer

from bench.common import REPEATS, Ctx, Row, median_row, timed
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.envelope import published_topics, stored_envelope
from infra.kafka.batches import record_of
from infra.kafka.relay import Relay
from infra.kafka.transactions import PRODUCER_SETTINGS

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def run(ctx: Ctx) -> list[Row]:
    env = ctx.checkout_store or None
    if env is None:
        return []
    service = build(load_settings(env))
    try:
        records = relay_records(service)
        # What the CloudEvents headers cost a producer: the same records with the three
        # headers published before them.
        plain = [(k, v, [h for h in hs if not h[0].startswith("ce_")]) for k, v, hs in records]
        before = raw_producer(ctx, plain, "c. raw producer, relay records, no ce_ headers")
        # Alternated: a drift of the machine hits both sides of the ratio.
        raws, relays = [], []
        for _ in range(ctx.size(REPEATS, 1)):
            raws.append(raw_producer(ctx, records))
            relays.append(relay_drain(ctx, service))
    finally:
        service.close()
    size = sum(len(k) + len(v) + sum(len(n) + len(h) for n, h in hs) for k, v, hs in records)
    return [before, median_row(raws, f"key + {len(records[0][2])} headers"),
            median_row(relays, f"transactional; {size // len(records)} B/msg")]


def relay_drain(ctx: Ctx, service: Service) -> Row:
    """A relay publishing every stored event into topics of its own."""
    topics = ctx.topics()
    relay = Relay(service, ctx.bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    relay.position  # noqa: B018 - connect and read the position before the clock starts
    try:
        with timed() as elapsed:
            published = relay.drain()
    finally:
        relay.close()
    return Row("d. relay events", published, elapsed())


def relay_records(service: Service) -> list[Record]:
    """What the relay will send for the stored events: key, value and headers of each."""
    app = service.app
    notifications = app.recorder.select_notifications(1, 10**7, topics=published_topics())
    records = []
    for notification in notifications:
        envelope = stored_envelope(app.mapper, notification, app.pseudonyms)
        assert envelope is not None
        records.append(record_of(envelope))
    return records


def raw_producer(
    ctx: Ctx, records: list[Record], name: str = "c. raw producer, relay records"
) -> Row:
    """kafka-python alone, with the relay's producer settings but no transactions, sending
    those records into a topic of its own."""
    topic = ctx.topics().events
    producer = KafkaProducer(bootstrap_servers=ctx.bootstrap, **PRODUCER_SETTINGS)
    producer.partitions_for(topic)  # metadata before the clock starts
    with timed() as elapsed:
        for key, value, record_headers in records:
            producer.send(topic, key=key, value=value, headers=record_headers)
        producer.flush()
    producer.close()
    return Row(name, len(records), elapsed(), f"key + {len(records[0][2])} headers")
