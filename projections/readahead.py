"""A source's next batch read and decoded in a thread while the views apply the one before."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(read: Callable[[], Iterator[T]], name: str) -> Generator[T, None, None]:
    """`read()`'s items, one read ahead: while the views' database writes a batch, the
    broker's fetch and the decoding work on the next, instead of in turn.
    Everything `read()` touches is touched by its thread only, from start to end (a Kafka
    consumer is not thread-safe): the thread has ended when this generator is closed or
    done. An error of the reader is raised here, after the batches read before it."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=1)
    closed = threading.Event()

    def hand(item: object) -> bool:
        while not closed.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        items = read()
        try:
            for item in items:
                if not hand(item):
                    return
        except BaseException as exc:  # handed over to the applying thread, raised there
            hand(exc)
            return
        finally:
            if isinstance(items, Generator):
                items.close()  # its cleanup (a consumer's close) in this thread too
        hand(_DONE)

    thread = threading.Thread(target=reader, name=name, daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        closed.set()
        thread.join()
