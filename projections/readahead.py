"""A source's next batch read in a thread while the views apply the one before."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
# One batch waits while one is applied (and one is being read): memory stays three batches.
DEPTH = 1
PUT_WAIT_S = 0.1


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class ReadAhead(Generic[T]):
    """Runs `batches` in a thread one batch ahead of the caller. Reading (the store's rows,
    decoded into envelopes) then overlaps the views' own round trips to their database, which
    otherwise leave this process idle a quarter of a rebuild.

    The batches come out in their order, and an error of the reader comes out where its
    batch would have. Leaving the `with` early stops the reader before the next batch."""

    def __init__(self, batches: Iterator[T], name: str = "read-ahead") -> None:
        self._batches = batches
        self._queue: queue.Queue[object] = queue.Queue(maxsize=DEPTH)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._take()

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _take(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def _read(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the caller, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()  # a generator's own cleanup runs in its thread, not the caller's

    def _put(self, item: object) -> bool:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False
