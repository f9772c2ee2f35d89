"""Benchmark section: projection rebuild rate vs raw Kafka, rebuild memory, audit verify latency."""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import psycopg
from kafka import KafkaAdminClient, TopicPartition

from bench import common
from bench.common import Ctx
from bench.copy_consumer import NAME as COPY_BASELINE
from bench.copy_consumer import copy_consume
from bench.data import KEPT_DATA_DIR, Clock, copy_to_postgres, kept_store
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.db import Database
from infra.kafka.admin import ensure_topics
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics
from infra.runtime import tune_gc
from projections import sources, topicreader
from projections.runner import Projector
from projections.schema import BALANCE
from projections.verify import verify_card

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
PARTITIONS = 12  # GIFTCARDS_PARTITIONS default
FULL = (100_000, 1_000_000)
QUICK = (10_000, 50_000)
VERIFY_CARDS = 500
TARGET_RATIO, TARGET_P99_MS = 0.5, 5.0


@dataclass
class Row:
    section: str
    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""


# --- child processes: one rebuild each, so its peak RSS is its own -------------------------


def settings_env(url: str) -> dict[str, str]:
    return {
        "GIFTCARDS_DATABASE_URL": url,
        "GIFTCARDS_SECRET_KEY": SECRET,
        # The keys the kept histories were made with (chains, pseudonyms): see bench/data.py.
        "GIFTCARDS_DATA_DIR": str(KEPT_DATA_DIR),
    }


def kept_service(url: str, clock: Clock) -> Service:
    return build(load_settings(settings_env(url)), clock=clock)


def child(args: argparse.Namespace) -> None:
    """Rebuild views into an empty database; print {events, seconds} as JSON."""
    projector = Projector(Database(args.views_url))
    service = build(load_settings(settings_env(args.store_url)))
    started = time.monotonic()
    pace = Pace(started)
    if args.child == "store":
        events = sources.sync_store(service.app, projector, progress=pace)
    elif args.child == "kafka":
        events = sources.sync_kafka(args.bootstrap, args.topic, projector, progress=pace)
    else:  # "idle": what the process costs before any event
        events = 0
    seconds = time.monotonic() - started
    print(orjson.dumps({"events": events, "seconds": seconds, "vmhwm_mb": vmhwm_mb(),
                        "quarters": pace.quarters()}).decode())


class Pace:
    """Envelopes applied over time, batch by batch: the rate over the first and the last
    quarter of a rebuild. A rebuild slowing as its views grow shows here within one run,
    whatever its baseline does (c' has fixed costs that a bigger topic amortises)."""

    def __init__(self, started: float) -> None:
        self.marks: list[tuple[int, float]] = [(0, started)]

    def __call__(self, messages: int, applied: int) -> None:
        self.marks.append((self.marks[-1][0] + applied, time.monotonic()))

    def quarters(self) -> tuple[float, float]:
        """(first quarter's rate, last quarter's rate) in envelopes/s; nan if too few batches."""
        total = self.marks[-1][0]
        return self._rate(0, total / 4), self._rate(3 * total / 4, total)

    def _rate(self, low: float, high: float) -> float:
        start = next(m for m in self.marks if m[0] >= low)
        end = next(m for m in self.marks if m[0] >= high)
        if end[0] <= start[0] or end[1] <= start[1]:
            return float("nan")
        return (end[0] - start[0]) / (end[1] - start[1])


def vmhwm_mb() -> float:
    """This process's own RSS high-water mark (a cross-check of the spawner's ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# Runs each child and reports wait4's rusage. A child's ru_maxrss starts at its forker's RSS
# (Linux carries the pre-exec high-water mark over exec), so children are forked from this
# small stdlib-only process, started before the big history exists, not from the bench itself.
SPAWNER = """
import json, os, subprocess, sys
for line in sys.stdin:
    proc = subprocess.Popen(json.loads(line), stdout=subprocess.PIPE)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status), "out": out,
                      "maxrss_kib": usage.ru_maxrss}), flush=True)
"""


class Spawner:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SPAWNER],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def run(self, argv: list[str]) -> tuple[str, float]:
        """(stdout, peak RSS in MB) of one child; fails if it failed."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(argv).decode() + "\n")
        self.proc.stdin.flush()
        done = orjson.loads(self.proc.stdout.readline())
        if done["status"]:
            raise RuntimeError(f"child {argv[3:5]} exited {done['status']}")
        return done["out"], done["maxrss_kib"] / 1024  # Linux: ru_maxrss in KiB

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def rebuild_in_child(
    ctx: Ctx, spawner: Spawner, source: str, store_url: str, **extra: str
) -> dict[str, Any]:
    """Rebuild into an empty database in a fresh process: {events, seconds, maxrss_mb}."""
    views_url = fresh_database(ctx)
    argv = [
        sys.executable,
        "-m",
        "bench.projections",
        "--child",
        source,
        "--store-url",
        store_url,
        "--views-url",
        views_url,
    ]
    for name, value in extra.items():
        argv += [f"--{name}", value]
    out, maxrss_mb = spawner.run(argv)
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return {**result, "maxrss_mb": maxrss_mb, "views_url": views_url}


# --- databases and topics ------------------------------------------------------------------


_created: list[str] = []


def fresh_database(ctx: Ctx) -> str:
    from dev.services import fresh_postgres_database

    url = fresh_postgres_database(ctx.pg_url)
    _created.append(url)
    return url


@contextmanager
def cleanup(ctx: Ctx) -> Iterator[list[str]]:
    """Drop every database and topic the section made, whatever happens."""
    from dev.services import drop_postgres_database

    topics: list[str] = []
    try:
        yield topics
    finally:
        for url in _created:
            drop_quietly(drop_postgres_database, url)
        _created.clear()
        if topics:
            admin = KafkaAdminClient(bootstrap_servers=ctx.bootstrap)
            try:
                admin.delete_topics(topics)
            finally:
                admin.close()


def drop_quietly(drop: Callable[[str], None], url: str) -> None:
    """An autovacuum worker (not ours to end) may still hold a freshly written database."""
    for attempt in range(10):
        try:
            drop(url)
            return
        except psycopg.Error as exc:
            if attempt == 9:
                print(f"warning: could not drop {url.rsplit('/', 1)[-1]}: {exc}", file=sys.stderr)
            time.sleep(3)


def publish(service: Service, bootstrap: str, topics: Topics) -> int:
    """Fill the events topic with the relay itself."""
    ensure_topics(bootstrap, topics, PARTITIONS)
    relay = Relay(service, bootstrap, topics, transactional_id=f"{topics.prefix}giftcards-relay")
    try:
        return relay.drain()
    finally:
        relay.close()


def raw_consume(bootstrap: str, topic: str) -> tuple[int, float]:
    """The same consumer settings as the projections (read_committed, batch size), no work."""
    started = time.monotonic()
    kc = topicreader.consumer(bootstrap, None)
    try:
        parts = [TopicPartition(topic, p) for p in kc.partitions_for_topic(topic) or ()]
        kc.assign(parts)
        kc.seek_to_beginning(*parts)
        ends = kc.end_offsets(parts)
        count = 0
        while any(kc.position(tp) < ends[tp] for tp in parts):
            count += sum(len(batch) for batch in kc.poll(timeout_ms=500).values())
    finally:
        kc.close()
    return count, time.monotonic() - started


# --- the measures --------------------------------------------------------------------------


def verify_latencies(service: Service, views: Database, cards: int) -> tuple[list[float], int]:
    """Seconds per `audit verify CARD_ID` (verify_card: the card's chain recomputed from the
    store and compared with a signed checkpoint of the whole store, then the views) over
    random cards; problems found."""
    import tempfile

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from infra import checkpoints as cps

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = [cps.create(service.app.recorder, service.app.mapper,
                                 Ed25519PrivateKey.generate(), service.app.now(),
                                 Path(directory))]
    ids = [UUID(r[0]) for r in views.execute(f"SELECT card_id FROM {BALANCE.name}")]
    chosen = random.Random(11).sample(ids, min(cards, len(ids)))
    for cid in chosen[:20]:  # warm connections and caches, as a running CLI has them
        verify_card(service.app, views, cid, checkpoint)
    times, problems = [], 0
    for cid in chosen:
        started = time.perf_counter()
        _, found = verify_card(service.app, views, cid, checkpoint)
        times.append(time.perf_counter() - started)
        problems += len(found)
    return times, problems


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def rebuilds(ctx: Ctx, spawner: Spawner, store_url: str, topics: Topics) -> list[dict[str, Any]]:
    """A rebuild from the store, then one from Kafka, each in its own process."""
    return [
        rebuild_in_child(ctx, spawner, "store", store_url),
        rebuild_in_child(
            ctx, spawner, "kafka", store_url, bootstrap=ctx.bootstrap, topic=topics.events
        ),
    ]


def run(ctx: Ctx) -> list[Row]:
    small, big = QUICK if ctx.quick else FULL
    rows: list[Row] = []
    with cleanup(ctx) as topics, ExitStack() as stack:
        spawner = Spawner()
        stack.callback(spawner.close)
        # Generated once per size (after the spawner started: its children do not inherit
        # the generator's memory), then copied into PostgreSQL: the store is the size claimed.
        kept, grow_seconds = kept_store(big, kept_service)
        store_url = fresh_database(ctx)
        service = build(load_settings(settings_env(store_url)))
        stack.callback(service.close)
        prefix = f"bench-{os.getpid()}-{int(time.time())}"
        small_topics, big_topics = Topics(f"{prefix}-s-"), Topics(f"{prefix}-b-")
        topics += [*small_topics.configs(), *big_topics.configs()]

        idle = rebuild_in_child(ctx, spawner, "idle", store_url)
        started = time.monotonic()
        sizes = [copy_to_postgres(kept, store_url, upto=small)]
        copy_seconds_store = time.monotonic() - started
        published = [publish(service, ctx.bootstrap, small_topics)]
        mem = [rebuilds(ctx, spawner, store_url, small_topics)]
        started = time.monotonic()
        sizes.append(copy_to_postgres(kept, store_url, after=sizes[0]))
        copy_seconds_store += time.monotonic() - started
        published.append(publish(service, ctx.bootstrap, big_topics))
        raw_count, raw_seconds = raw_consume(ctx.bootstrap, big_topics.events)
        # Each take into a database of its own.
        copies = [common.Row(COPY_BASELINE, *copy_consume(ctx.bootstrap, big_topics.events,
                                                          fresh_database(ctx)))
                  for _ in range(ctx.size(common.REPEATS, 1))]
        baseline = common.median_row(copies, "read_committed; a COPY transaction per poll")
        ctx.rows[COPY_BASELINE] = baseline
        mem.append(rebuilds(ctx, spawner, store_url, big_topics))
        views = Database(mem[1][0]["views_url"])
        stack.callback(views.close)
        times, problems = verify_latencies(service, views, VERIFY_CARDS)

    raw_rate = raw_count / raw_seconds
    rows.append(
        Row(
            "projections",
            "store size",
            f"{sizes[1]:,} stored events",
            f"{published[1]:,} published",
            "",
            f"{big:,}" + ("" if sizes[1] >= big else " (not reached in time)"),
        )
    )
    rows.append(
        Row(
            "projections",
            "history generation",
            f"{sizes[1] / grow_seconds:,.0f} ev/s" if grow_seconds else "kept from a run before",
            f"copied into PostgreSQL at {sizes[1] / copy_seconds_store:,.0f} ev/s",
            "",
            f"{big:,} stored events in every full run",
        )
    )
    rows.append(
        Row(
            "projections",
            "raw kafka-python consumer",
            f"{raw_rate:,.0f} msg/s",
            f"{raw_count:,} msgs",
        )
    )
    copy_rate = baseline.rate
    rows.append(Row("projections", COPY_BASELINE, f"{copy_rate:,.0f} msg/s",
                    f"{baseline.count:,} msgs"))
    for source, result in zip(("store", "kafka"), mem[1], strict=True):
        rate = result["events"] / result["seconds"]
        # Also a measure of the run's results, for the ratios against their baselines.
        ctx.rows[f"rebuild from {source}"] = common.Row(
            f"rebuild from {source}", result["events"], result["seconds"],
            f"events applied, {sizes[1]:,} stored")
        # Store rebuilds also read the unpublished index records, which apply nothing.
        read = f"; {sizes[1] / result['seconds']:,.0f} stored rec/s" if source == "store" else ""
        rows.append(
            Row(
                "projections",
                f"rebuild from {source}",
                f"{rate:,.0f} ev/s",
                f"c' {copy_rate:,.0f} msg/s{read}",
                f"{rate / copy_rate:.2f}",
                f">= {TARGET_RATIO}",
            )
        )
    for source, result in zip(("store", "kafka"), mem[1], strict=True):
        first, last = result["quarters"]
        rows.append(
            Row(
                "projections",
                f"rebuild from {source}, last quarter",
                f"{last:,.0f} ev/s",
                f"first quarter {first:,.0f} ev/s (the views growing to {sizes[1]:,} stored)",
                f"{last / first:.2f}",
                "flat (~1.0)",
            )
        )
    for source, i in (("store", 0), ("kafka", 1)):
        low, high = mem[0][i], mem[1][i]
        rows.append(
            Row(
                "projections",
                f"peak RSS rebuild from {source}",
                f"{high['maxrss_mb']:.0f} MB @ {sizes[1]:,} stored (VmHWM {high['vmhwm_mb']:.0f})",
                f"{low['maxrss_mb']:.0f} MB @ {sizes[0]:,}; idle {idle['maxrss_mb']:.0f} MB",
                f"{high['maxrss_mb'] / low['maxrss_mb']:.2f}",
                "flat (~1.0)",
            )
        )
    rows.append(
        Row(
            "projections",
            "audit verify CARD_ID p50",
            f"{quantile(times, 0.5) * 1000:.2f} ms",
            f"{len(times)} cards",
        )
    )
    rows.append(
        Row(
            "projections",
            "audit verify CARD_ID p99",
            f"{quantile(times, 0.99) * 1000:.2f} ms",
            f"max {max(times) * 1000:.2f} ms; {problems} problems",
            "",
            f"<= {TARGET_P99_MS} ms",
        )
    )
    return rows


def print_table(rows: list[Row], quick: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"projections benchmark ({'quick' if quick else 'full'}, PostgreSQL, "
        f"os.cpu_count()={os.cpu_count()})"
    )
    for name in ("measure", "value", "baseline / context", "ratio", "target"):
        table.add_column(name)
    for r in rows:
        table.add_row(r.measure, r.value, r.baseline, r.ratio, r.target)
    Console(width=140).print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.projections")
    parser.add_argument("--quick", action="store_true", help="10k/50k events instead of 100k/1M")
    parser.add_argument("--child", choices=["store", "kafka", "idle"], help=argparse.SUPPRESS)
    for name in ("store-url", "views-url", "bootstrap", "topic"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tune_gc()  # as the `projections rebuild` CLI process does
    if args.child:
        child(args)
        return
    from dev import kafka_dev
    from dev.services import postgres_url

    ctx = Ctx(pg_url=postgres_url(), bootstrap=kafka_dev.up(), quick=args.quick)
    print_table(run(ctx), args.quick)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"children total CPU {usage.ru_utime + usage.ru_stime:.0f} s")


if __name__ == "__main__":
    main()
