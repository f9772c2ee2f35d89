"""`python -m bench [--quick] [--only SECTION]`: every section on PostgreSQL and the real broker,
one table, its results kept as JSON (bench/results/) and docs/benchmarks.md generated from them;
`python -m bench --check [FILE]`: exits 1 naming each ratio below its target."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import checkout, console, http, page, projections, relay, results
from bench.common import Ctx, Section, durable_postgres, print_latencies, print_table
from dev import kafka_dev
from dev.services import postgres_url
from infra.runtime import tune_gc

# Another section (e.g. bench/projections.py) is one more module with run(ctx) here.
SECTIONS: dict[str, Section] = {"checkout": checkout.run, "relay": relay.run, "http": http.run,
                                "console": console.run}
ALL = [*SECTIONS, "projections"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for a smoke run (results kept under .cache/bench)")
    parser.add_argument("--http", action="store_true",
                        help="only (a) and the HTTP API's section (e, f)")
    parser.add_argument("--only", action="append", choices=ALL, metavar="SECTION",
                        help=f"run only these sections (one of {', '.join(ALL)}; repeatable): "
                        "a partial run, labelled so in its results")
    parser.add_argument("--check", nargs="?", const="latest", metavar="FILE",
                        help="measure nothing: exit 1 naming each ratio of the results (the "
                        "latest kept run by default) below its target")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.check)
    logging.basicConfig(level=logging.WARNING)
    tune_gc()  # as every CLI process does: the naive path and the consumer alike
    durable_postgres()
    chosen = args.only or (["http"] if args.http else ALL)
    started, load_before = datetime.now(UTC), os.getloadavg()
    ctx = Ctx(pg_url=postgres_url(), bootstrap=kafka_dev.up(), quick=args.quick)
    if args.http:
        naive = checkout.naive(ctx)
        ctx.rows[naive.name] = naive
    for name in chosen:
        if name in SECTIONS:
            for row in SECTIONS[name](ctx):
                ctx.rows[row.name] = row
    print_table(ctx, [(r.label, r.measure, r.baseline, r.target)
                      for r in results.TARGETS + results.CONTEXT])
    print_latencies(ctx, results.P99_MS)
    if "projections" in chosen:
        table = projections.run(ctx)
        ctx.extra["projections"] = [asdict(row) for row in table]
        projections.print_table(table, args.quick)
    kind = "quick" if args.quick else "full" if set(chosen) == set(ALL) else "partial"
    result = results.collect(ctx, kind=kind, sections=chosen, load_before=load_before,
                             started=started)
    saved = results.save(result)
    print(f"results: {saved}")
    if kind != "quick":
        page.write()
        print(f"page: {page.PAGE} (from {results.latest()})")
    return 0


def check(which: str) -> int:
    path = results.latest() if which == "latest" else Path(which)
    if path is None:
        print(f"no results in {results.RESULTS}: run `python -m bench` first", file=sys.stderr)
        return 1
    result = results.load(path)
    failed = results.failures(result)
    label = f"{path.name} ({result['kind']} run of {result['commit'][:12]}, {result['started']})"
    if result["kind"] != "full":
        failed.insert(0, f"not a full run: sections {', '.join(result['sections'])} only")
    for line in failed:
        print(f"BELOW TARGET {line}", file=sys.stderr)
    print(f"{label}: {'every target met' if not failed else f'{len(failed)} not met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
