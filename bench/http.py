"""Section (e): the HTTP API as a real `giftcards api` (one process per core), loaded by
bench/load.py.

Authorize+capture pairs at 64 clients with group commit on, and off (each command its own
transaction, the naive HTTP baseline); lookups against the same server's authenticated
constant POST (`POST /v1/ping`: the key check and request, no card read) and its health check.
Each is repeated and reported as the median with its spread (min-max), with the load average
of the machine while it ran: on a shared machine the figures mean little when it is high.
Then, at 64 clients, open loop: arrivals on a clock at half the capacity the closed-loop runs
just measured (pairs and lookups alike), latencies counted from each arrival's due time."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from application.commands import PurchaseCard
from bench.common import Ctx, Row
from bench.results import OPEN_LOOKUPS, OPEN_PAIRS

CLIENTS = 64
# The p99 ceilings at 64 closed-loop clients need, by Little's law, 64 / 0.05 s = 1,280
# requests/s at the least: more than the constant endpoint serves on this machine. The same
# operations are also timed at a few clients, where latency is the service's, not the queue's.
FEW_CLIENTS = 8
REPEATS = 3
# The open-loop runs' arrival rate: this share of the closed-loop capacity measured in the run.
OPEN_LOOP_LOAD = 0.5
# Lookups and the constant endpoint alternate, so that each pair sees the same machine: on a
# shared machine the constant endpoint alone varied 3,300-6,100/s within one minute.
PAIRED_REPEATS = 5
# One API process per core, as deployed (`giftcards api --processes N`); every row the same.
PROCESSES = os.cpu_count() or 1
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_process(env: dict[str, str], grouped: bool, processes: int = 1) -> Iterator[int]:
    """`giftcards api` on a free port until the block ends; its output to a temporary log."""
    import httpx

    port = free_port()
    full = {**os.environ, **env, "GIFTCARDS_API_GROUP_COMMIT": "on" if grouped else "off"}
    log = Path(f"/tmp/bench-api-{port}.log")
    with log.open("wb") as out:
        process = subprocess.Popen([GIFTCARDS, "api", "--port", str(port),
                                    "--processes", str(processes)], env=full,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.unlink(missing_ok=True)


def load(job: dict[str, Any]) -> dict[str, Any]:
    """One run of the load generator in its own process; its load average alongside."""
    done = subprocess.run([sys.executable, "-m", "bench.load"], input=orjson.dumps(job),
                          capture_output=True, check=True, timeout=900)
    result: dict[str, Any] = orjson.loads(done.stdout)
    if result["failures"]:
        raise RuntimeError(f"{job['kind']}: requests failed: {result['failures']}")
    result["load"] = os.getloadavg()[0]
    return result


def capacity(runs: list[dict[str, Any]]) -> float:
    """Arrivals per second (pairs or lookups) of the median closed-loop run."""
    return float(statistics.median(r["count"] / r["seconds"] for r in runs))


def summary(name: str, runs: list[dict[str, Any]], per: int, what: str,
            clients: int = CLIENTS) -> Row:
    """The median run's rate as the row, the spread and percentiles in its note."""
    rates = sorted(per * r["count"] / r["seconds"] for r in runs)
    median = statistics.median(rates)
    p50 = statistics.median(r["p50_ms"] for r in runs)
    p99s = [r["p99_ms"] for r in runs]
    loads = [r["load"] for r in runs]
    note = (f"{what}; {clients} clients, x{len(runs)}: {rates[0]:,.0f}-{rates[-1]:,.0f}/s; "
            f"p50 {p50:.1f} ms, p99 {statistics.median(p99s):.1f} ms (max {max(p99s):.1f}); "
            f"load {min(loads):.1f}-{max(loads):.1f}")
    # A Row of the median rate: count/seconds reproduce it.
    shares = [r["busy"] for r in runs if r.get("busy") is not None]
    return Row(name, per * runs[0]["count"], per * runs[0]["count"] / median, note,
               p99_ms=statistics.median(p99s), spread=(rates[0], rates[-1]),
               busy=statistics.median(shares) if shares else None)


def bought_codes(ctx: Ctx, env: dict[str, str], count: int) -> list[str]:
    """Cards to spend, bought through the application in a few large transactions (untimed)."""
    from infra.bootstrap import build
    from infra.config import load_settings

    service = build(load_settings(env))
    codes: list[str] = []
    try:
        while len(codes) < count:
            with service.app.batch() as uow:
                for _ in range(min(500, count - len(codes))):
                    code = service.app.purchase(PurchaseCard(
                        market="FR", amount=5000, payment_method="card", buyer_id="bench",
                        order_id=f"bench-buy-{len(codes)}",
                    ), within=uow).code
                    assert code is not None  # a new order: its code is shown
                    codes.append(code)
        return codes
    finally:
        service.close()


def api_key(env: dict[str, str]) -> str:
    from application.apikeys import ApiKeys
    from infra.bootstrap import build
    from infra.config import load_settings

    service = build(load_settings(env))
    try:
        return str(ApiKeys(service.app).create(name="bench", scopes=["checkout"])["key"])
    finally:
        service.close()


def run(ctx: Ctx) -> list[Row]:
    pairs = ctx.size(1000, 300)
    lookups = ctx.size(5000, 1000)
    _, env = ctx.fresh_service()
    key = api_key(env)
    few = ctx.size(300, 100)
    codes = bought_codes(ctx, env, 3 * REPEATS * pairs + REPEATS * few + 1000)
    rows = []
    for grouped in (False, True):
        runs = []
        with api_process(env, grouped, PROCESSES) as port:
            base = {"port": port, "key": key, "clients": CLIENTS}
            load({**base, "kind": "constant", "count": 500, "run": "warm"})
            for n in range(REPEATS):
                first = (2 * n + grouped) * pairs
                runs.append(load({**base, "kind": "pairs", "count": pairs, "run": f"{grouped}{n}",
                                  "codes": codes[first:first + pairs]}))
            if grouped:
                looked, pinged, constant = [], [], []
                for n in range(PAIRED_REPEATS):
                    looked.append(load({**base, "kind": "lookup", "count": lookups,
                                        "run": f"l{n}", "codes": codes[-1000:]}))
                    pinged.append(load({**base, "kind": "ping", "count": lookups,
                                        "run": f"p{n}", "codes": codes[-1000:]}))
                    constant.append(load({**base, "kind": "constant", "count": lookups,
                                          "run": f"c{n}"}))
                quiet = {**base, "clients": FEW_CLIENTS}
                spent = 2 * REPEATS * pairs
                few_pairs = [load({**quiet, "kind": "pairs", "count": few, "run": f"q{n}",
                                   "codes": codes[spent + n * few:spent + (n + 1) * few]})
                             for n in range(REPEATS)]
                few_lookups = [load({**quiet, "kind": "lookup", "count": lookups // 5,
                                     "run": f"ql{n}", "codes": codes[-1000:]})
                               for n in range(REPEATS)]
                spent += REPEATS * few
                pairs_rate = OPEN_LOOP_LOAD * capacity(runs)
                open_pairs = [load({**base, "kind": "pairs", "count": pairs, "rate": pairs_rate,
                                    "run": f"o{n}",
                                    "codes": codes[spent + n * pairs:spent + (n + 1) * pairs]})
                              for n in range(REPEATS)]
                lookups_rate = OPEN_LOOP_LOAD * capacity(looked)
                open_lookups = [load({**base, "kind": "lookup", "count": lookups // 2,
                                      "rate": lookups_rate, "run": f"ol{n}",
                                      "codes": codes[-1000:]})
                                for n in range(REPEATS)]
        name = ("e. HTTP authorize+capture, group commit" if grouped
                else "e0. HTTP authorize+capture, 1 transaction each")
        rows.append(summary(name, runs, 2, "requests (2 per pair)"))
    paired = sorted(f["count"] / f["seconds"] / (c["count"] / c["seconds"])
                    for f, c in zip(looked, pinged, strict=True))
    rows.append(summary("f. HTTP lookup", looked, 1,
                        f"POST /v1/cards/lookup (f/f0 run by run: {paired[0]:.2f}-"
                        f"{paired[-1]:.2f}, median {statistics.median(paired):.2f})"))
    rows.append(summary("f0. HTTP authenticated constant POST", pinged, 1,
                        "POST /v1/ping, the lookup's request and key check"))
    rows.append(summary("f0. HTTP constant endpoint", constant, 1, "GET /health/live"))
    rows.append(summary(f"e{FEW_CLIENTS}. HTTP authorize+capture, {FEW_CLIENTS} clients",
                        few_pairs, 2, "requests (2 per pair)", FEW_CLIENTS))
    rows.append(summary(f"f{FEW_CLIENTS}. HTTP lookup, {FEW_CLIENTS} clients", few_lookups, 1,
                        "POST /v1/cards/lookup", FEW_CLIENTS))
    share = f"{OPEN_LOOP_LOAD:.0%}"
    rows.append(summary(OPEN_PAIRS, open_pairs, 2,
                        f"requests (2 per pair), open loop: {2 * pairs_rate:,.0f} requests/s "
                        f"due, {share} of e's capacity; latency from each arrival's due time"))
    rows.append(summary(OPEN_LOOKUPS, open_lookups, 1,
                        f"POST /v1/cards/lookup, open loop: {lookups_rate:,.0f}/s due, {share} "
                        "of f's capacity; latency from each arrival's due time"))
    return rows
