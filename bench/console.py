"""Section (k): the console's pages at 8 operators signed in at once, on PostgreSQL: a real
`giftcards console` process, each operator a keep-alive client with their own session, every
page answered in full (the target: p95 <= 100 ms per page).

`python -m bench.console [--quick]` runs it alone and prints the rows as JSON."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from application.commands import PurchaseCard, RedeemCard
from bench.common import Ctx, Row

OPERATORS = 8
P95_CEILING_MS = 100.0
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def prepare(ctx: Ctx, cards: int) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A store with `cards` cards (a third of them used) and one support and one auditor."""
    from application.operators import Operators

    service, env = ctx.fresh_service()
    try:
        operators = Operators(service.app)
        root = operators.add("root", "admin", None)["key"]
        admin = operators.authenticate(root)
        keys = {role: operators.add(f"bench-{role}", role, admin)["key"]
                for role in ("support", "auditor")}
        ids = []
        for n in range(cards):
            card = service.app.purchase(PurchaseCard(
                order_id=f"bench-console-{n}", market="FR", amount=5000, payment_method="card",
                buyer_id=f"cus-{n}", buyer_email=f"cus-{n}@example.org",
            ))
            if n % 3 == 0 and card.code is not None:
                service.app.redeem(RedeemCard(
                    code=card.code, market="FR", order_id=f"bench-use-{n}", order_total=3000,
                    customer_id=f"cus-{n}", source="bench",
                ))
            ids.append(str(card.card_id))
    finally:
        service.close()
    return env, keys, ids


async def operator(url: str, key: str, pages: list[tuple[str, str]], rounds: int,
                   timings: dict[str, list[float]]) -> None:
    """Signs in, then opens each page `rounds` times; latencies by page (its route)."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        form = await client.get("/console/sign-in")
        token = TOKEN.search(form.text)
        assert token is not None
        done = await client.post("/console/sign-in", data={"csrf": token.group(1), "key": key})
        assert done.status_code == 303, done.status_code  # to the home page: signed in
        for _ in range(rounds):
            for route, path in pages:
                started = time.perf_counter()
                answer = await client.get(path)
                elapsed = time.perf_counter() - started
                assert answer.status_code == 200, (route, answer.status_code)
                timings.setdefault(route, []).append(elapsed)


async def drive(url: str, keys: dict[str, str], ids: list[str], rounds: int
                ) -> tuple[dict[str, list[float]], float]:
    support = ["/console/cards/{card}"]
    audit = ["/console/audit/cards/{card}", "/console/audit/liability",
             "/console/audit/breakage"]
    timings: dict[str, list[float]] = {}
    jobs = []
    for n in range(OPERATORS):  # half customer service, half auditors
        role, pages = ("support", support) if n % 2 == 0 else ("auditor", audit)
        card = ids[n % len(ids)]
        jobs.append(operator(url, keys[role], [(p, p.replace("{card}", card)) for p in pages],
                             rounds, timings))
    started = time.perf_counter()
    await asyncio.gather(*jobs)
    return timings, time.perf_counter() - started


def run(ctx: Ctx) -> list[Row]:
    import httpx

    from bench.http import free_port

    env, keys, ids = prepare(ctx, ctx.size(300, 30))
    port = free_port()
    full = {**os.environ, **env, "GIFTCARDS_CONSOLE_IDLE_SECONDS": "3600"}
    log = Path(f"/tmp/bench-console-{port}.log")
    with log.open("wb") as out:
        process = subprocess.Popen([GIFTCARDS, "console", "--port", str(port)], env=full,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the console did not start: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        asyncio.run(drive(url, keys, ids, 2))  # warm-up: views built, caches filled
        timings, seconds = asyncio.run(drive(url, keys, ids, ctx.size(40, 8)))
    except Exception:
        sys.stderr.write(log.read_text()[-3000:])
        raise
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.unlink(missing_ok=True)
    rows = []
    for route, samples in sorted(timings.items()):
        cuts = statistics.quantiles(samples, n=100)
        p95, p99 = cuts[94] * 1000, cuts[98] * 1000
        page = route.replace("{card}", "CARD_ID")
        verdict = "ok" if p95 <= P95_CEILING_MS else "ABOVE TARGET"
        rows.append(Row(f"k. console GET {page}, {OPERATORS} operators", len(samples), seconds,
                        note=f"p95 {p95:.1f} ms (target <= {P95_CEILING_MS:.0f}) {verdict}",
                        p99_ms=p99))
    return rows


def main() -> None:
    from dev.services import postgres_url

    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    ctx = Ctx(pg_url=postgres_url(), bootstrap="", quick=args.quick)
    rows = run(ctx)
    sys.stdout.write(orjson.dumps([{"name": r.name, "count": r.count, "note": r.note,
                                    "p99_ms": r.p99_ms} for r in rows],
                                  option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
