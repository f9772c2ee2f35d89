"""The bench framework: a context shared by sections, result rows, and the table printer."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.kafka.topics import Topics

SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"


@dataclass
class Row:
    name: str
    count: int
    seconds: float
    note: str = ""
    p99_ms: float | None = None  # sections that measure latency (the HTTP API)
    spread: tuple[float, float] | None = None  # lowest and highest rate of repeated runs
    busy: float | None = None  # the machine's CPUs' busy share while it ran (see machine_busy)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


# A short measure (a baseline, the relay) is taken this many times and judged on its median:
# one run of seconds moves with a two-core machine's background by as much as half.
REPEATS = 3


def median_row(runs: list[Row], note: str) -> Row:
    """Repeated runs of one measure as one row: the median run's rate, the lowest and highest
    rates as its spread."""
    rates = sorted(run.rate for run in runs)
    count = runs[0].count
    return Row(runs[0].name, count, count / statistics.median(rates), f"{note}; x{len(runs)}",
               spread=(rates[0], rates[-1]))


@dataclass
class Ctx:
    """What every section gets: where PostgreSQL and Kafka are, and how big to go."""

    pg_url: str
    bootstrap: str
    quick: bool
    rows: dict[str, Row] = field(default_factory=dict)
    # The store filled by section (b): the relay section publishes those same events.
    checkout_store: dict[str, str] = field(default_factory=dict)
    # What sections report beyond rows (the projections table), kept in the results JSON.
    extra: dict[str, Any] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def fresh_service(self) -> tuple[Service, dict[str, str]]:
        """A Service on a new, empty PostgreSQL database (and the env to reach it)."""
        from dev.services import fresh_postgres_database

        env = {
            "GIFTCARDS_DATABASE_URL": fresh_postgres_database(self.pg_url),
            "GIFTCARDS_SECRET_KEY": SECRET,
            "GIFTCARDS_NOW": "2026-01-12T10:00:00Z",
            # Its own data dir: the KEK ring, keys and mail of a checkout's `var/` (sealed
            # under another secret key) are not the bench's.
            "GIFTCARDS_DATA_DIR": tempfile.mkdtemp(prefix="giftcards-bench-"),
        }
        return build(load_settings(env)), env

    def topics(self, partitions: int = 12) -> Topics:
        from dev.services import unique_topic_prefix
        from infra.kafka.admin import ensure_topics, verify_topics
        from infra.supervisor import retry_until_done

        topics = Topics(f"bench-{unique_topic_prefix()}")
        ensure_topics(self.bootstrap, topics, partitions, 1)
        # Until the broker describes them: a relay checks its topics as it connects.
        retry_until_done(threading.Event(), "the bench's new topics",
                         lambda: verify_topics(self.bootstrap, topics, topics.configs()))
        return topics


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


Section = Callable[[Ctx], list[Row]]


def print_table(ctx: Ctx, ratios: list[tuple[str, str, str, float]]) -> None:
    console = Console()
    table = Table(title=f"giftcards bench (PostgreSQL + Kafka, cpu_count={os.cpu_count()})")
    for column in ("measure", "count", "seconds", "per second", "note"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    for row in ctx.rows.values():
        table.add_row(row.name, str(row.count), f"{row.seconds:.2f}", f"{row.rate:,.0f}", row.note)
    console.print(table)
    for label, top, bottom, target in ratios:
        if top in ctx.rows and bottom in ctx.rows and ctx.rows[bottom].rate:
            value = ctx.rows[top].rate / ctx.rows[bottom].rate
            verdict = "ok" if value >= target else "BELOW TARGET"
            console.print(f"{label} = {value:.2f} (target >= {target}) {verdict}")


def print_latencies(ctx: Ctx, targets: list[tuple[str, float]]) -> None:
    """Each row's median p99 against its ceiling."""
    console = Console()
    for name, ceiling in targets:
        p99 = ctx.rows[name].p99_ms if name in ctx.rows else None
        if p99 is not None:
            verdict = "ok" if p99 <= ceiling else "ABOVE TARGET"
            console.print(f"p99 {name} = {p99:.1f} ms (target <= {ceiling:.0f} ms) {verdict}")


def as_json(ctx: Ctx) -> dict[str, Any]:
    return {
        name: {"count": r.count, "seconds": r.seconds, "rate": r.rate}
        for name, r in ctx.rows.items()
    }


def durable_postgres() -> None:
    """Transaction costs only mean something with real commits: a cluster with fsync on."""
    if not os.environ.get("GIFTCARDS_TEST_POSTGRES_URL"):
        os.environ.setdefault("PG_DEV_PORT", "15433")
        os.environ.setdefault("PG_DEV_DURABLE", "1")
