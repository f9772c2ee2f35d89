"""`python -m bench [--quick]`: every section on PostgreSQL and the real broker, one table."""

from __future__ import annotations

import argparse
import logging
import os

from bench import checkout, http, projections, relay
from bench.common import Ctx, Section, print_latencies, print_table
from dev import kafka_dev
from dev.services import postgres_url
from infra.runtime import tune_gc

# Another section (e.g. bench/projections.py) is one more module with run(ctx) here.
SECTIONS: list[Section] = [checkout.run, relay.run, http.run]
RATIOS = [
    ("b/a", "b. checkout consumer end to end", "a. naive: 1 command / transaction", 5.0),
    # The baseline is "the same message sizes": the relay's own records. The ratio
    # against the 214 B checkout messages is printed too, for comparison with earlier runs.
    ("d/c-producer", "d. relay events", "c. raw producer, relay records", 0.5),
    ("d/c-producer (214 B messages)", "d. relay events", "c. raw kafka-python producer", 0.5),
    # HTTP: authorize+capture over HTTP at 64 clients against (a), commands per second
    # both (2 per pair); against the same API without group commit for comparison.
    ("e/a", "e. HTTP authorize+capture, group commit", "a. naive: 1 command / transaction", 3.0),
    ("e/e0", "e. HTTP authorize+capture, group commit",
     "e0. HTTP authorize+capture, 1 transaction each", 1.0),
    ("f/f0", "f. HTTP lookup", "f0. HTTP constant endpoint", 0.5),
]
P99 = [("e. HTTP authorize+capture, group commit", 50.0), ("f. HTTP lookup", 20.0),
       ("e8. HTTP authorize+capture, 8 clients", 50.0), ("f8. HTTP lookup, 8 clients", 20.0)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--http", action="store_true",
                        help="only (a) and the HTTP API's section (e, f)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tune_gc()  # as every CLI process does: the naive path and the consumer alike
    durable_postgres()
    ctx = Ctx(pg_url=postgres_url(), bootstrap=kafka_dev.up(), quick=args.quick)
    sections = [lambda ctx: [checkout.naive(ctx)], http.run] if args.http else SECTIONS
    for section in sections:
        for row in section(ctx):
            ctx.rows[row.name] = row
    print_table(ctx, RATIOS)
    print_latencies(ctx, P99)
    if not args.http:
        projections.print_table(projections.run(ctx), args.quick)


def durable_postgres() -> None:
    """Transaction costs only mean something with real commits: a cluster with fsync on."""
    if not os.environ.get("GIFTCARDS_TEST_POSTGRES_URL"):
        os.environ.setdefault("PG_DEV_PORT", "15433")
        os.environ.setdefault("PG_DEV_DURABLE", "1")


if __name__ == "__main__":
    main()
