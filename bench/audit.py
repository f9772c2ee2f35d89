"""`python -m bench.audit`: `audit verify CARD_ID` latency at 10k and at 1M stored events, same run.

The issue's target is p99 ≤ 5 ms at 1M stored events. The history is generated in SQLite (in
process, ~10× faster than a command per PostgreSQL round trip) for as long as it takes, and
copied row for row into PostgreSQL (COPY; same notification ids, same stored bytes); on each
backend the views are caught up from the store, one
signed checkpoint of the whole store taken (as `audit checkpoint` does), then each round times
`verify_card` — the card's chain recomputed from its stored events, compared with the
checkpoint, then its replay with the views — over random cards. The same measure at 10k
events in the same process is the baseline: the ratio says whether the cost grows with the
store. A one-row indexed read of the balance view is timed alongside, as the machine's noise
floor (the machine is shared), and each call's CPU time beside its wall time. Each `audit
verify` process first reads and checks the signed checkpoints (once, whatever the number of
cards): that cost, which grows with the number of cards checkpointed, is reported apart."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.data import copy_to_postgres, kept_store
from bench.projections import cleanup, fresh_database, kept_service, settings_env
from infra import checkpoints as cps
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.db import Database
from infra.runtime import tune_gc
from projections import sources
from projections.runner import Projector
from projections.schema import BALANCE
from projections.verify import verify_card

SIZES = (10_000, 1_000_000)
QUICK = (2_000, 20_000)
ROUNDS, CARDS = 5, 300
TARGET_P99_MS = 5.0


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def timed(call: Callable[[UUID], Any], cards: list[UUID]) -> tuple[list[float], list[float]]:
    """(wall times, this thread's CPU times) per call: on a shared machine the wall time's
    p99 is mostly the time the thread waited for a core, which the CPU time leaves out."""
    wall, cpu = [], []
    for card in cards:
        started, on_cpu = time.perf_counter(), time.thread_time()
        call(card)
        wall.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - on_cpu)
    return wall, cpu


def measure(service: Service, views: Database, rounds: int, cards: int) -> dict[str, Any]:
    """p50/p99 of verify_card and of the noise-floor read, per round, over random cards."""
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        cps.create(service.app.recorder, service.app.mapper, key, service.app.now(),
                   Path(directory))
        checkpoint_s = time.perf_counter() - started
        # What each `audit verify` process does first: read and check the signed checkpoints
        # (signature, Merkle roots of every head) before the card's own chain is compared.
        cps.forget()
        started = time.perf_counter()
        checkpoint, untrusted = cps.trusted(Path(directory), cps.KeyRing.of(key.public_key()))
        load_s = time.perf_counter() - started
        assert len(checkpoint) == 1 and not untrusted, untrusted
    ids = [UUID(r[0]) for r in views.execute(f"SELECT card_id FROM {BALANCE.name}")]
    rng = random.Random(11)
    problems = 0

    def verify(cid: UUID) -> None:
        nonlocal problems
        problems += len(verify_card(service.app, views, cid, checkpoint)[1])

    def floor(cid: UUID) -> None:
        views.execute(f"SELECT balance FROM {BALANCE.name} WHERE card_id = ?", [str(cid)])

    for cid in rng.sample(ids, min(20, len(ids))):  # warm connections, as a running CLI has them
        verify(cid)
    out: dict[str, Any] = {"verify_p50": [], "verify_p99": [], "verify_cpu_p99": [],
                           "floor_p99": [], "load": []}
    for _ in range(rounds):
        chosen = rng.sample(ids, min(cards, len(ids)))
        out["load"].append(os.getloadavg()[0])
        # Interleaved, so that both see the same moment of the shared machine.
        (v, v_cpu), (f, _) = timed(verify, chosen), timed(floor, chosen)
        out["verify_p50"].append(percentile(v, 50) * 1000)
        out["verify_p99"].append(percentile(v, 99) * 1000)
        out["verify_cpu_p99"].append(percentile(v_cpu, 99) * 1000)
        out["floor_p99"].append(percentile(f, 99) * 1000)
    out.update(cards=len(ids), problems=problems, checkpoint_s=checkpoint_s,
               checkpoint_load_ms=[load_s * 1000])
    return out


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("--quick", action="store_true", help="2k/20k events (a smoke run)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--store", help="keep the generated SQLite stores in this folder and "
                        "reuse them (default: a temporary folder)")
    args = parser.parse_args(argv)
    tune_gc()  # as the CLI process does
    from bench.common import Ctx
    from dev.services import postgres_url

    ctx = Ctx(pg_url=postgres_url(), bootstrap="", quick=args.quick)
    sizes = QUICK if args.quick else SIZES
    results: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgres": []}
    with cleanup(ctx), tempfile.TemporaryDirectory() as temporary:
        work = Path(args.store or temporary)
        work.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            path, grown = kept_store(size, kept_service, folder=work)
            stores = {"sqlite": build(load_settings(settings_env(f"sqlite:///{path}")))}
            pg_store = fresh_database(ctx)
            stores["postgres"] = build(load_settings(settings_env(pg_store)))  # its tables
            copy_to_postgres(path, pg_store)
            views = {"sqlite": Database(f"sqlite:///{temporary}/views-{size}.db"),
                     "postgres": Database(fresh_database(ctx))}
            try:
                for name, service in stores.items():
                    sources.sync_store(service.app, Projector(views[name]))
                    result = measure(service, views[name], args.rounds, CARDS)
                    stored = int(service.app.recorder.max_notification_id() or 0)
                    result.update(stored=stored, grow_s=grown)
                    results[name].append(result)
                    print(f"{name}: {stored:,} stored events, {result['cards']:,} cards: verify "
                          f"p99 {spread(result['verify_p99'])} ms (CPU "
                          f"{spread(result['verify_cpu_p99'])} ms), floor p99 "
                          f"{spread(result['floor_p99'])} ms, checkpoint read and checked "
                          f"{result['checkpoint_load_ms'][0]:.0f} ms, load "
                          f"{spread(result['load'])}", flush=True)
            finally:
                for db in views.values():
                    db.close()
                for service in stores.values():
                    service.close()
    for name, (low, high) in results.items():
        print(f"\n{name}: | measure | at {high['stored']:,} stored | at {low['stored']:,} stored "
              "(baseline) | ratio | target |")
        print("|---|---|---|---|---|")
        for key, label in (("verify_p50", "`audit verify CARD_ID` p50, ms"),
                           ("verify_p99", "`audit verify CARD_ID` p99, ms"),
                           ("verify_cpu_p99", "its CPU time p99, ms (less the waits for a "
                                              "core)"),
                           ("checkpoint_load_ms", "once per `audit verify` process: the "
                                                  "checkpoint read and checked, ms"),
                           ("floor_p99", "one-row view read p99, ms (noise floor)")):
            target = f"≤ {TARGET_P99_MS} ms" if key == "verify_p99" else ""
            r = statistics.median(high[key]) / statistics.median(low[key])
            print(f"| {label} | {spread(high[key])} | {spread(low[key])} | {r:.2f} | {target} |")
        print(f"rounds {args.rounds} × {CARDS} random cards; problems found {high['problems']} "
              f"(must be 0); checkpoint of the whole store {high['checkpoint_s']:.0f} s; "
              f"load average {spread(high['load'])}")


if __name__ == "__main__":
    main()
