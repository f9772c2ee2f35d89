"""R3: repositioning some partitions (after a rebalance or a batch that did not publish) never
skips the records a poll returned for the others."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition

from consumers.checkout import CheckoutConsumer
from consumers.checkout_processor import Outcome

P0, P1 = TopicPartition("order.checkout", 0), TopicPartition("order.checkout", 1)


@dataclass(frozen=True)
class Rec:
    offset: int
    value: bytes | None = b"{}"


class FakeKafkaConsumer:
    """Partitions as growing logs with a position each, as a Kafka consumer sees them."""

    def __init__(self, script: list[Any]) -> None:
        self.ends = {P0: 0, P1: 0}
        self.position = {P0: 0, P1: 0}
        self.commits: dict[TopicPartition, int | None] = {P0: None, P1: None}
        self.script = script  # per poll: what is appended before it, or "stop"
        self.polls = 0
        self.stop = threading.Event()

    def subscribe(self, topics: list[str], listener: Any) -> None:
        listener.on_partitions_assigned([P0, P1])

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Rec]]:
        step = self.script[self.polls] if self.polls < len(self.script) else {}
        self.polls += 1
        if step == "stop" or self.polls > 20:
            self.stop.set()
            return {}
        for tp, more in step.items():
            self.ends[tp] += more
        out = {}
        for tp in (P0, P1):
            if self.position[tp] < self.ends[tp]:
                out[tp] = [Rec(o) for o in range(self.position[tp], self.ends[tp])]
                self.position[tp] = self.ends[tp]
        return out

    def group_metadata(self) -> str:
        return "generation-1"

    def assignment(self) -> set[TopicPartition]:
        return {P0, P1}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position[tp] = offset

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.position[tp] = 0

    def committed(self, tp: TopicPartition, timeout_ms: int) -> int | None:
        return self.commits[tp]

    def close(self, autocommit: bool) -> None:
        pass


class FakeProcessor:
    def __init__(self, kafka: FakeKafkaConsumer) -> None:
        self.kafka = kafka

    def next_offset(self, partition: int) -> int | None:
        return self.kafka.commits[P0 if partition == 0 else P1]


def consumer_over(
    kafka: FakeKafkaConsumer, failures: int
) -> tuple[CheckoutConsumer, dict[TopicPartition, list[int]]]:
    """A CheckoutConsumer on the fake whose first `failures` batches do not publish."""
    consumer = CheckoutConsumer.__new__(CheckoutConsumer)
    consumer.consumer = kafka
    consumer.processor = FakeProcessor(kafka)  # type: ignore[assignment]
    consumer.topics = type("T", (), {"checkout": "order.checkout"})()
    consumer.unpositioned = set()
    consumer.positioned = threading.Event()
    consumer.handled = 0
    consumer._producer = object()
    handled: dict[TopicPartition, list[int]] = {P0: [], P1: []}
    left = [failures]

    def handle(
        polled: dict[TopicPartition, list[Rec]], stop: Any = None, member: Any = None
    ) -> Outcome:
        if left[0] > 0:
            left[0] -= 1
            # As `rewind` does after a transaction that did not commit.
            consumer.unpositioned.update(polled)
            return Outcome()
        for tp, records in polled.items():
            handled[tp] += [r.offset for r in records]
            kafka.commits[tp] = records[-1].offset + 1
        return Outcome()

    consumer.handle = handle  # type: ignore[method-assign,assignment]
    consumer.close = lambda: None  # type: ignore[method-assign]
    return consumer, handled


def test_r3_records_of_other_partitions_polled_while_one_is_repositioned_are_handled() -> None:
    # p0's batch fails to publish; before p0 is taken back, a poll brings p1's first records.
    kafka = FakeKafkaConsumer([{}, {P0: 2}, {P1: 3}, {}, {}, "stop"])
    consumer, handled = consumer_over(kafka, failures=1)
    consumer.run(kafka.stop)
    assert handled == {P0: [0, 1], P1: [0, 1, 2]}


def test_r3_the_first_assignment_drops_nothing_it_does_not_fetch_again() -> None:
    kafka = FakeKafkaConsumer([{P0: 2, P1: 1}, {P1: 1}, {}, "stop"])
    consumer, handled = consumer_over(kafka, failures=0)
    consumer.run(kafka.stop)
    assert handled == {P0: [0, 1], P1: [0, 1]}
