"""The relay reads its batches in a process of its own: the very batches a reader in the relay's
process gives, a short batch answered by a fresh read of the store, and no reader left behind
by its relay."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from infra.bootstrap import Service
from infra.kafka.batches import Batch, BatchProcess, BatchReader
from infra.kafka.cloudevents import CloudEvents
from tests.integration.child_processes import helpers_end_with, running, spawned
from tests.integration.test_relay import fill

PARTITIONS = [0, 1, 2]
SIZE = 16  # events per batch: several batches, some read ahead


def process(service: Service, position: int = 0) -> BatchProcess:
    settings = service.settings
    return BatchProcess(settings, CloudEvents.of(settings), position, SIZE, PARTITIONS, False)


def every_batch(reader: BatchReader | BatchProcess) -> list[Batch]:
    batches = []
    while (batch := reader.read()) is not None:
        batches.append(batch)
    return batches


@pytest.fixture
def reader(service: Service) -> Iterator[BatchProcess]:
    fill(service.app, 12)
    reader = process(service)
    yield reader
    reader.close()


def test_the_reader_process_gives_the_batches_a_reader_in_the_relay_gives(
    service: Service, reader: BatchProcess
) -> None:
    inline = BatchReader(service, CloudEvents.of(service.settings), 0, SIZE, PARTITIONS, False)
    expected = every_batch(inline)
    assert len(expected) > 2 and expected[0].full and not expected[-1].full
    assert every_batch(reader) == expected


def test_a_short_batch_is_answered_by_a_fresh_read(
    service: Service, reader: BatchProcess
) -> None:
    last = every_batch(reader)[-1].last
    assert reader.read() is None
    fill(service.app, 3, tag="later")
    later = every_batch(reader)
    assert later and later[0].first > last
    fresh = BatchReader(service, CloudEvents.of(service.settings), last, SIZE, PARTITIONS, False)
    assert later == every_batch(fresh)


def test_a_reader_started_before_events_are_stored_reads_them(service: Service) -> None:
    fill(service.app, 1)
    reader = process(service)  # reads its first, short, batch at once
    try:
        fill(service.app, 12, tag="later")
        batches = every_batch(reader)
    finally:
        reader.close()
    inline = BatchReader(service, CloudEvents.of(service.settings), 0, SIZE, PARTITIONS, False)
    assert batches == every_batch(inline)


def test_closing_the_reader_ends_its_process(service: Service, reader: BatchProcess) -> None:
    assert reader.read() is not None
    assert [p for p in spawned(os.getpid()) if running(p)]
    reader.close()
    assert not [p for p in spawned(os.getpid()) if running(p)]


RELAY = """
import sys, time
import orjson
from infra.config import load_settings
from infra.kafka.batches import BatchProcess
from infra.kafka.cloudevents import CloudEvents
settings = load_settings(orjson.loads(sys.argv[1]))
reader = BatchProcess(settings, CloudEvents.of(settings), 0, 16, [0, 1, 2], False)
reader.read()
print("read", flush=True)
time.sleep(60)  # the relay stuck: its reader waits with the next batch in hand
"""


def test_a_reader_ends_on_its_own_when_its_relay_is_killed(
    service: Service, env_for: dict[str, str]
) -> None:
    fill(service.app, 12)
    relay = subprocess.Popen([sys.executable, "-c", RELAY, orjson.dumps(env_for)],
                             stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    helpers_end_with(relay, "read", "reader")
