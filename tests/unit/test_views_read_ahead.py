"""A rebuild's source read one batch ahead in a thread: order kept, errors raised in turn, and
the thread gone when the reading stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

import pytest

from projections.readahead import read_ahead


def test_batches_come_in_order_all_read_by_one_other_thread() -> None:
    readers: set[int] = set()

    def read() -> Iterator[int]:
        for n in range(50):
            readers.add(threading.get_ident())
            yield n

    assert list(read_ahead(read, "t")) == list(range(50))
    assert readers and threading.get_ident() not in readers and len(readers) == 1


def test_a_readers_error_is_raised_after_the_batches_read_before_it() -> None:
    def read() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("source went away")

    got = []
    with pytest.raises(ConnectionError, match="source went away"):
        for n in read_ahead(read, "t"):
            got.append(n)
    assert got == [1, 2]


def test_closing_early_ends_the_thread_and_runs_the_readers_cleanup() -> None:
    cleaned = threading.Event()
    read_so_far: list[int] = []

    def read() -> Iterator[int]:
        try:
            n = 0
            while True:  # an endless source: only closing stops it
                read_so_far.append(n)
                yield n
                n += 1
        finally:
            cleaned.set()  # e.g. the Kafka consumer closed, by its own thread

    before = threading.active_count()
    with closing(read_ahead(read, "t")) as batches:
        for n in batches:
            if n == 3:
                break
    assert cleaned.is_set()  # closed before closing() returned: the thread was joined
    assert threading.active_count() == before
    assert len(read_so_far) <= 3 + 3  # bounded read-ahead, not the whole source
