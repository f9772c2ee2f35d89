"""The views' sources read one batch ahead in a thread: order, errors, stopping, bounded memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from projections.readahead import DEPTH, ReadAhead


class Source:
    """Numbered batches; records how far it was read and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.read = 0
        self.closed = threading.Event()
        self.threads: set[str] = set()

    def batches(self) -> Iterator[list[int]]:
        try:
            for n in range(self.count):
                self.threads.add(threading.current_thread().name)
                if n == self.fail_at:
                    raise ConnectionError(f"batch {n} unreadable")
                self.read = n + 1
                yield [n, n]
        finally:
            self.closed.set()


def test_every_batch_comes_out_once_and_in_order_read_in_another_thread() -> None:
    source = Source(50)
    with ReadAhead(source.batches(), "reader") as batches:
        got = [b[0] for b in batches]
    assert got == list(range(50))
    assert source.threads == {"reader"}
    assert source.closed.is_set()


def test_an_error_of_the_reader_is_raised_where_its_batch_would_have_come() -> None:
    source = Source(10, fail_at=4)
    got: list[int] = []
    with (pytest.raises(ConnectionError, match="batch 4 unreadable"),
          ReadAhead(source.batches()) as batches):
        for b in batches:
            got.append(b[0])
    assert got == [0, 1, 2, 3]


def test_leaving_early_stops_the_reader_and_closes_its_source() -> None:
    source = Source(1_000)
    with ReadAhead(source.batches()) as batches:
        for b in batches:
            if b[0] == 2:
                break
    assert source.closed.wait(5)
    assert source.read < 10  # it did not read on to the end


def test_the_reader_stays_at_most_one_waiting_batch_ahead_of_the_caller() -> None:
    """Memory is bounded: a slow caller holds one batch, one waits, one is being read."""
    source = Source(100)
    with ReadAhead(source.batches()) as batches:
        for b in batches:
            time.sleep(0.02)  # the reader has all the time it needs to run ahead
            assert source.read <= b[0] + 1 + DEPTH + 1
            if b[0] == 5:
                break
