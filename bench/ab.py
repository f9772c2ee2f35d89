"""`python -m bench.ab --base REV`: the views' rebuild (or with `--source relay`, the relay's
drain) of this working copy against another commit's, in alternated pairs on one durable
PostgreSQL and one history (results in bench/results/ab/)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import results
from bench.common import durable_postgres
from bench.data import copy_to_postgres, kept_store
from bench.projections import kept_service, publish, settings_env
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "bench" / "results" / "ab"
# Outside this copy: its tools (pytest, ruff, mypy) never see the other checkouts.
TREES = Path(tempfile.gettempdir()) / "giftcards-bench-trees"


def commit_of(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def tree(sha: str) -> Path:
    """A checkout of commit `sha` sharing this copy's kept histories (their keys are in
    .cache)."""
    path = TREES / sha[:12]
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(path), sha], cwd=ROOT,
                       check=True, capture_output=True)
        (path / ".cache").symlink_to(ROOT / ".cache")
    return path


def rebuild(root: Path, source: str, store_url: str, extra: list[str]) -> dict[str, Any]:
    """One rebuild by the code at `root`, in a fresh process into an empty database."""
    from dev.services import drop_postgres_database, fresh_postgres_database, postgres_url

    views = fresh_postgres_database(postgres_url())
    try:
        return measured(root, ["-m", "bench.projections", "--child", source,
                               "--store-url", store_url, "--views-url", views, *extra])
    finally:
        drop_postgres_database(views)


def drain(root: Path, store_url: str, bootstrap: str) -> dict[str, Any]:
    """One relay of the code at `root` draining the store into new topics, in a fresh
    process."""
    # By path, this copy's script with the other commit's code (-P: not this copy's bench/).
    return measured(root, ["-P", str(ROOT / "bench" / "relay_drain.py"), store_url, bootstrap])


def measured(root: Path, args: list[str]) -> dict[str, Any]:
    """What a measuring process of the code at `root` printed last: {events, seconds}."""
    done = subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONPATH": str(root)})
    if done.returncode:
        raise RuntimeError(f"{args} at {root} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab")
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--source", choices=["store", "kafka", "relay"], default="store")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--stored", type=int, default=300_000,
                        help="stored events of the kept 1M history to rebuild from")
    args = parser.parse_args(argv)
    durable_postgres()
    from dev import kafka_dev
    from dev.services import drop_postgres_database, fresh_postgres_database, postgres_url

    base_commit = commit_of(args.base)
    base, new = tree(base_commit), ROOT
    kept, _ = kept_store(1_000_000, kept_service)
    store_url = fresh_postgres_database(postgres_url())
    extra: list[str] = []
    try:
        service = build(load_settings(settings_env(store_url)))
        try:
            stored = copy_to_postgres(kept, store_url, upto=args.stored)
            if args.source != "store":
                bootstrap = kafka_dev.up()
            if args.source == "kafka":
                topics = Topics(f"ab-{os.getpid()}-{int(time.time())}-")
                publish(service, bootstrap, topics)
                extra = ["--bootstrap", bootstrap, "--topic", topics.events]
        finally:
            service.close()
        pairs = []
        for n in range(args.pairs):  # alternated: a drift of the machine hits both sides
            first, second = ((base, "base"), (new, "new")) if n % 2 == 0 else (
                (new, "new"), (base, "base"))
            pair = {}
            for root, side in (first, second):
                result = (drain(root, store_url, bootstrap) if args.source == "relay"
                          else rebuild(root, args.source, store_url, extra))
                pair[side] = result["events"] / result["seconds"]
            pairs.append(pair)
            print(f"pair {n + 1}: base {pair['base']:,.0f} ev/s, new {pair['new']:,.0f} ev/s, "
                  f"{pair['new'] / pair['base'] - 1:+.1%}", flush=True)
    finally:
        drop_postgres_database(store_url)
    gains = [p["new"] / p["base"] - 1 for p in pairs]
    summary = {
        "started": datetime.now(UTC).isoformat(), "source": args.source, "stored": stored,
        "base": base_commit,
        "new": results.commit(), "machine": results.machine(), "pairs": pairs,
        "median_gain": statistics.median(gains), "faster_in": sum(g > 0 for g in gains),
    }
    KEPT.mkdir(parents=True, exist_ok=True)
    out = KEPT / (f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{args.source}-"
                  f"{summary['base'][:12]}-{summary['new'][:12]}.json")
    out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(f"median {summary['median_gain']:+.1%}; new faster in {summary['faster_in']} of "
          f"{len(pairs)} pairs; kept in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
