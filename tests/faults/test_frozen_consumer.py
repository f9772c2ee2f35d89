"""A checkout consumer frozen past its session (SIGSTOP) under a stream of orders, then resumed:
the partner took its partitions over, and the frozen one's late poll publishes nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.faults.consistency import reply_problems
from tests.faults.processes import ServiceProcess
from tests.faults.test_relay_faults import kafka_env
from tests.integration.kafka_helpers import TopicReader, create_topics
from tests.integration.test_checkout_consumer import ordered

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]
FROZEN_S = 14  # past the consumers' 10 s session: the group hands the partitions over
RATE_PER_S = 40
LATE_REPLIES_S = 3.0  # how long a second reply is waited for once each message has one


class OrderStream:
    """Orders on `order.checkout` at a steady rate, each with a message id of its own."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.topic = topic
        self.sent: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="orders")

    def __enter__(self) -> OrderStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.producer.flush()
        self.producer.close()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(1 / RATE_PER_S):
            message_id, order_id = f"frozen-{i}", f"order-frozen-{i}"
            self.producer.send(self.topic, key=order_id.encode(), value=ordered(message_id,
                                                                                order_id))
            self.sent.add(message_id)
            i += 1


def read(reader: TopicReader) -> list[dict[str, Any]]:
    reader.poll()
    return [orjson.loads(value) for value in reader.raw]


def freeze(process: ServiceProcess, seconds: float) -> None:
    assert process.process is not None
    os.kill(process.process.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(process.process.pid, signal.SIGCONT)


@pytest.mark.parametrize("backend", ["postgres"])
def test_r3_a_consumer_frozen_past_its_session_under_orders_leaves_exactly_one_reply_per_message(
    kafka_bootstrap: str, env_for: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics, 2)
    env = kafka_env(env_for, kafka_bootstrap, topics)
    consumers = [ServiceProcess(["consume", "checkout"], env, tmp_path / f"consumer-{n}.log")
                 for n in range(2)]
    replies = TopicReader(kafka_bootstrap, topics.results)
    try:
        for consumer in consumers:
            consumer.start()
        with OrderStream(kafka_bootstrap, topics.checkout) as orders:
            deadline = time.monotonic() + 60
            while len(read(replies)) < RATE_PER_S:  # both members in the group, answering
                assert time.monotonic() < deadline, consumers[0].log_tail()
                time.sleep(0.2)
            for consumer in consumers:  # each in turn holds a partition, frozen, resumed
                time.sleep(2)
                freeze(consumer, FROZEN_S)
            time.sleep(3)
        sent = set(orders.sent)
        deadline = time.monotonic() + 60
        while not sent <= {r["message_id"] for r in read(replies)}:
            missing = sent - {r["message_id"] for r in read(replies)}
            assert time.monotonic() < deadline, (len(missing), [c.log_tail() for c in consumers])
            time.sleep(0.5)
        time.sleep(LATE_REPLIES_S)
        problems = reply_problems(read(replies), sent, may_repeat=False)
        assert not problems, f"{len(problems)} problems: {problems[:10]}"
        assert all(c.alive() for c in consumers), [c.log_tail() for c in consumers]
    finally:
        replies.close()
        for consumer in consumers:
            consumer.kill()
