"""Checkout lookups read together: the lookups waiting in the API's event loop share one query."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from domain.giftcard import CardFacts
from infra.db import CONNECT_TIMEOUT_S, session_options
from infra.recorders import BinaryPostgresProcessRecorder, facts_row_sound

log = logging.getLogger(__name__)

Counts = tuple[int, int, int]
Read = tuple[CardFacts | None, Counts]
Guards = tuple[UUID, UUID, UUID]
# Past this many waiting lookups a second query starts (a bound on one statement's size).
MAX_BATCH = 256
# Queries in flight at once: while they run, the next lookups gather for the next one.
IN_FLIGHT = 2


class CardFactsReader:
    """Reads codes' kept card rows and their subjects' unknown codes from the event loop, as
    group commit does for writes: the lookups that arrive while a query runs wait for the next
    one, so a busy API pays one round trip (and one driver call) for many lookups. Nothing
    leaves the event loop: no thread-pool hand-off, no GIL wait per round trip."""

    def __init__(self, url: str, recorder: BinaryPostgresProcessRecorder) -> None:
        self.query = recorder.card_facts_query
        # The statement as bytes, rendered once (on the first connection): composing it again
        # for every batch cost more than the batch's parameters.
        self.query_bytes: bytes | None = None
        self.unknown_topic = recorder.unknown_code_topic
        self.missed_topic = recorder.miss_counted_topic
        self.key = recorder.facts_key
        # Autocommit: one statement is its own snapshot, with no BEGIN/ROLLBACK around it. No
        # ping before each use (a round trip): a connection that fails is dropped by the
        # pool, and the callers answer those lookups the full way (which retries, or says 503).
        self.pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            url, min_size=1, max_size=IN_FLIGHT, open=False, timeout=2.0,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                    "options": session_options(url)},
            name="card-facts",
        )
        self.opened = False
        self.waiting: list[tuple[UUID, Guards, asyncio.Future[Read]]] = []
        self.running = 0

    async def close(self) -> None:
        """Closes the pool in the loop that opened it, before that loop ends: the pool's
        workers outlive a cancellation that comes while they connect, so a loop ended with
        the pool open could wait for them forever. A connection being made is waited for."""
        if self.opened:
            await self.pool.close(timeout=CONNECT_TIMEOUT_S + 1)

    async def read(self, code_index: UUID, guards: Guards) -> Read:
        """The card's facts and R8's counts in `guards` (the subject's window, the source's,
        the source's budget); None for the facts when there is no row, an
        event came after it, or the database did not answer (the caller then reads in full)."""
        if not self.opened:  # opened in the event loop that uses it
            self.opened = True
            await self.pool.open(wait=False)
        future: asyncio.Future[Read] = asyncio.get_running_loop().create_future()
        self.waiting.append((code_index, guards, future))
        if self.running < IN_FLIGHT:
            self.running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                await self._answer(batch)
        finally:
            self.running -= 1

    async def _answer(self, batch: list[tuple[UUID, Guards, asyncio.Future[Read]]]) -> None:
        params = {
            "codes": [code for code, _, _ in batch],
            "windows": [guards[0] for _, guards, _ in batch],
            "sources": [guards[1] for _, guards, _ in batch],
            "budgets": [guards[2] for _, guards, _ in batch],
            "unknown": self.unknown_topic,
            "missed": self.missed_topic,
        }
        found: dict[int, Read] = {}
        try:
            async with self.pool.connection() as conn:
                if self.query_bytes is None:
                    self.query_bytes = self.query.as_bytes(conn)
                cursor = await conn.execute(self.query_bytes, params, binary=True)
                for (i, card_id, status, balance, currency, market, expires_at, held_until,
                     last4, version, mac, stale, *counts) in await cursor.fetchall():
                    row = CardFacts(
                        card_id=card_id, status=status, balance=balance, currency=currency,
                        market=market, expires_at=expires_at, held_until=held_until,
                        code_last4=last4,
                    )
                    sound = not stale and facts_row_sound(self.key, row, version, mac)
                    if not stale and not sound:
                        # Edited by hand, or written before rows were sealed: the events answer.
                        log.warning("lookup row of card %s does not match its MAC; the card is "
                                    "read in full (audit verify names it)", card_id)
                    found[i - 1] = (row if sound else None,
                                    (int(counts[0]), int(counts[1]), int(counts[2])))
        except Exception as error:  # whatever it was, the full lookup still answers
            log.warning("lookup rows not read (%s); the cards are read in full",
                        type(error).__name__)
            found = {}
        finally:
            # Every waiting lookup gets an answer, even if this task is cancelled: none hangs.
            for n, (_, _, future) in enumerate(batch):
                if not future.done():  # its request may have been cancelled meanwhile
                    future.set_result(found.get(n, (None, (0, 0, 0))))
