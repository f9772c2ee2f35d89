"""The API's writer: concurrent requests' commands grouped into one transaction per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar
from uuid import UUID

from application.cards import GiftCards
from application.groupcommit import Done, run_together
from application.unit_of_work import UnitOfWork

T = TypeVar("T")
MAX_BATCH = 256


class Writer:
    """Requests queue their commands; one batch at a time runs on the pool while the next one
    gathers (group commit: under load a commit carries many requests, alone it carries one, so
    nobody waits for a timer). `grouped=False`: each command its own transaction (the naive
    baseline the bench compares with)."""

    def __init__(
        self, app: GiftCards, pool: Executor, *, grouped: bool = True,
        observe: Callable[[int], None] = lambda size: None,
    ) -> None:
        self.app = app
        self.pool = pool
        self.grouped = grouped
        self.observe = observe  # the batch sizes, for /metrics
        self.queue: list[tuple[Callable[[UnitOfWork], Any], list[UUID], asyncio.Future[Done]]]
        self.queue = []
        self.flusher: asyncio.Task[None] | None = None

    async def run(self, command: Callable[[UnitOfWork], T], keys: Iterable[UUID] = ()) -> T:
        """The command's result, or its refusal raised, as if it had run alone."""
        loop = asyncio.get_running_loop()
        if not self.grouped:
            return await loop.run_in_executor(self.pool, lambda: self.app.run(command))
        answer: asyncio.Future[Done] = loop.create_future()
        self.queue.append((command, list(keys), answer))
        if self.flusher is None:
            self.flusher = loop.create_task(self._flush())
        result: T = (await answer).get()
        return result

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
                commands = [command for command, _, _ in batch]
                keys = [key for _, wanted, _ in batch for key in wanted]
                try:
                    done = await loop.run_in_executor(
                        self.pool, run_together, self.app, commands, keys
                    )
                except Exception as error:  # every request of the batch is told
                    done = [Done(error=error)] * len(batch)
                self.observe(len(batch))
                for (_, _, answer), outcome in zip(batch, done, strict=True):
                    if not answer.done():
                        answer.set_result(outcome)
        finally:
            self.flusher = None
