"""Seeded card histories for the benchmarks, written fast through `app.batch()` group commits,
kept between runs as SQLite stores and copied row for row into PostgreSQL stores."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from application.cards import GiftCards
from application.commands import PurchaseCard, RedeemCard
from application.unit_of_work import UnitOfWork
from domain.errors import DomainError

MARKETS = ("FR", "DE", "GB")
AMOUNTS = (2000, 5000, 10000, 30000)
COMMANDS_PER_TX = 500
# Generated once per size and kept (.cache is not tracked): every full run measures a store of
# the size it claims, without spending its time on generating one.
KEPT = Path(__file__).resolve().parents[1] / ".cache" / "bench" / "history"
# The keys a kept store's chains and pseudonyms were made with: every service reading one
# (the PostgreSQL copies included) uses them.
KEPT_DATA_DIR = KEPT / "var"


@dataclass
class Clock:
    """Moves only when the generator says so: histories are reproducible."""

    now: datetime = field(default_factory=lambda: datetime(2025, 1, 6, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Card:
    card_id: str
    code: str
    market: str
    expires_at: datetime


class History:
    """Grows a store to a number of stored events and can be asked to grow again.

    A purchase stores 4 events (Purchased, Activated, 2 index entries); a redemption 2
    (Redeemed, order index); a late use of an expired card 2 (Expired, RedemptionRefused);
    an unknown code 1 or 2 (CheckoutUnknownCodeTried, stream opened)."""

    def __init__(self, app: GiftCards, clock: Clock, seed: int = 7) -> None:
        self.app, self.clock, self.rng = app, clock, random.Random(seed)
        self.unused: deque[Card] = deque()  # purchase order = expiry order
        self.commands = 0

    def stored(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    def grow(self, target: int, deadline: float = float("inf")) -> int:
        """Run commands until the store holds `target` events or time.monotonic() passes
        `deadline`; returns the events stored."""
        while (count := self.stored()) < target and time.monotonic() < deadline:
            with self.app.batch() as uow:
                for _ in range(COMMANDS_PER_TX):
                    self._one(uow)
        return count

    def _one(self, uow: UnitOfWork) -> None:
        rng, n = self.rng, self.commands
        self.commands += 1
        # ~20 minutes between commands: past 100k events cards start expiring unused.
        self.clock.now += timedelta(seconds=rng.randint(60, 1800))
        roll = rng.random()
        if self.unused and self.unused[0].expires_at <= self.clock.now and roll < 0.15:
            self._try(self.unused.popleft(), n, uow)  # late use: Expired + RedemptionRefused
        elif roll < 0.55 or not self.unused:
            result = self._attempt(self.app.purchase, PurchaseCard(
                market=rng.choice(MARKETS), amount=rng.choice(AMOUNTS), payment_method="card",
                buyer_id=f"buyer-{rng.randint(0, 20_000)}", order_id=f"buy-{n}",
            ), within=uow)
            if result:
                self.unused.append(
                    Card(
                        str(result.card_id),
                        result.code,
                        result.card.market,
                        result.card.expires_at,
                    )
                )
        elif roll < 0.97:
            # A random recent card: older ones are left to expire.
            i = len(self.unused) - 1 - min(int(rng.expovariate(1 / 200)), len(self.unused) - 1)
            card = self.unused[i]
            del self.unused[i]
            self._try(card, n, uow)
        else:
            self._attempt(self.app.redeem, RedeemCard(
                code=f"NOPE{n}", market="FR", order_id=f"pay-{n}", order_total=1000,
                customer_id=f"cust-{self.rng.randint(0, 5000)}", source="bench",
            ), within=uow)

    def _try(self, card: Card, n: int, uow: UnitOfWork) -> None:
        self._attempt(self.app.redeem, RedeemCard(
            code=card.code, market=card.market, order_id=f"pay-{n}",
            order_total=self.rng.choice((1000, 4000, 60000)),
            customer_id=f"cust-{self.rng.randint(0, 5000)}", source="bench",
        ), within=uow)

    @staticmethod
    def _attempt(use_case: Any, command: Any, *, within: UnitOfWork) -> Any:
        try:
            return use_case(command, within=within)
        except DomainError:  # refusals that record an event keep it (batch stays usable)
            return None


def kept_store(size: int, build_service: Any, folder: Path = KEPT) -> tuple[Path, float]:
    """The seeded history's SQLite store of `size` events (at least), generated if no earlier
    run left it complete in `folder`; (path, seconds spent generating it now). A history
    cannot be grown on after a restart (its clock and order numbers start again), so a store is
    made whole under a temporary name and renamed when complete. `build_service(url, clock)`
    builds a service whose data dir is KEPT_DATA_DIR."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"store-{size}.db"
    if path.exists():
        return path, 0.0
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    clock = Clock()
    service = build_service(f"sqlite:///{partial}", clock)
    started = time.monotonic()
    try:
        History(service.app, clock).grow(size)
    finally:
        service.close()
    seconds = time.monotonic() - started
    partial.rename(path)
    return path, seconds


def copy_to_postgres(sqlite_path: Path, pg_url: str, after: int = 0,
                     upto: int | None = None) -> int:
    """Append the SQLite store's events with notification ids in (`after`, `upto`] to the
    PostgreSQL store whose tables the caller's `build` created (COPY: same ids, same stored
    bytes); returns the last id copied."""
    src = sqlite3.connect(sqlite_path)
    last = after
    try:
        rows = src.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid > ? AND rowid <= ? ORDER BY rowid", [after, upto or 2**62]
        )
        with psycopg.connect(pg_url) as dst:
            with dst.cursor() as cur, cur.copy(
                "COPY giftcards_events (notification_id, originator_id, originator_version, "
                "topic, state) FROM STDIN"
            ) as copy:
                for rowid, oid, version, topic, state in rows:
                    copy.write_row((rowid, UUID(oid), version, topic, state))
                    last = rowid
            dst.execute("SELECT setval('giftcards_events_notification_id_seq', "
                        "(SELECT max(notification_id) FROM giftcards_events))")
            dst.execute("ANALYZE giftcards_events")  # as autovacuum would, after a bulk load
    finally:
        src.close()
    return int(last)
