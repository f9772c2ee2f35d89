"""The bench's results kept as JSON (every measure, its spread, the load, commit, date and
machine), the targets its ratios must meet, and `python -m bench --check` over them."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.common import Ctx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"  # full and partial runs: tracked, the page's source
SMOKE = ROOT / ".cache" / "bench"  # --quick runs: kept out of the tracked results
Json = dict[str, Any]

A = "a. naive: 1 command / transaction"
B = "b. checkout consumer end to end"
B_CORES = "b-cores. checkout consumers end to end, one process per core"
E = "e. HTTP authorize+capture, group commit"
OPEN_PAIRS = "e-open. HTTP authorize+capture, open loop at half capacity"
OPEN_LOOKUPS = "f-open. HTTP lookup, open loop at half capacity"


@dataclass(frozen=True)
class Ratio:
    label: str
    measure: str
    baseline: str
    target: float  # the measure's rate at least this many times the baseline's


# What `make bench` must show, each against a baseline taken in the same run.
TARGETS = [
    Ratio("b/a", B, A, 8.0),
    # The batch path at least as fast as the synchronous one, per command.
    Ratio("b/e", B, E, 1.0),
    # The relay against the raw producer on the relay's own records.
    Ratio("d/c", "d. relay events", "c. raw producer, relay records", 0.7),
    # What our code adds to a lookup: against an authenticated POST answering a constant.
    Ratio("f/f0", "f. HTTP lookup", "f0. HTTP authenticated constant POST", 0.8),
    # Views rebuilt at the database's pace: a raw consumer COPYing the same envelopes.
    Ratio("rebuild from store / c'", "rebuild from store", "c'. raw consumer COPY into PostgreSQL",
          0.5),
    Ratio("rebuild from kafka / c'", "rebuild from kafka", "c'. raw consumer COPY into PostgreSQL",
          0.5),
]
# Printed for comparison with earlier runs; not targets.
CONTEXT = [
    Ratio("d/c-producer (214 B messages)", "d. relay events", "c. raw kafka-python producer", 0.5),
    Ratio("e/a", E, A, 3.0),
    Ratio("e/e0", E, "e0. HTTP authorize+capture, 1 transaction each", 1.0),
    # Like for like with e (one API process per core): one checkout consumer per core.
    Ratio("b-cores/e", B_CORES, E, 1.0),
    Ratio("f/f0 (GET /health/live)", "f. HTTP lookup", "f0. HTTP constant endpoint", 0.5),
]
P99_MS = [(E, 50.0), ("f. HTTP lookup", 20.0), ("e8. HTTP authorize+capture, 8 clients", 50.0),
          ("f8. HTTP lookup, 8 clients", 20.0),
          # 64 clients, open loop at half the closed-loop capacity: latency from the due time.
          (OPEN_PAIRS, 50.0), (OPEN_LOOKUPS, 20.0)]


def ratio_value(measures: dict[str, Json], ratio: Ratio) -> float | None:
    top, bottom = measures.get(ratio.measure), measures.get(ratio.baseline)
    if not top or not bottom or not bottom.get("rate"):
        return None
    return float(top["rate"]) / float(bottom["rate"])


def ratios(measures: dict[str, Json], which: Iterable[Ratio]) -> list[Json]:
    out = []
    for ratio in which:
        value = ratio_value(measures, ratio)
        out.append({"label": ratio.label, "measure": ratio.measure, "baseline": ratio.baseline,
                    "target": ratio.target, "value": value,
                    "ok": value is not None and value >= ratio.target})
    return out


def latencies(measures: dict[str, Json]) -> list[Json]:
    out = []
    for name, ceiling in P99_MS:
        p99 = (measures.get(name) or {}).get("p99_ms")
        out.append({"measure": name, "p99_ms": p99, "ceiling_ms": ceiling,
                    "ok": p99 is not None and p99 <= ceiling})
    return out


def collect(ctx: Ctx, *, kind: str, sections: list[str], load_before: tuple[float, ...],
            started: datetime) -> Json:
    """Everything a run measured, with what is needed to judge it later."""
    measures = {
        name: {"count": row.count, "seconds": row.seconds, "rate": row.rate, "note": row.note,
               "p99_ms": row.p99_ms, "spread": list(row.spread) if row.spread else None,
               "busy": row.busy}
        for name, row in ctx.rows.items()
    }
    return {
        "kind": kind,
        "sections": sections,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": machine(),
        "load": {"before": list(load_before), "after": list(os.getloadavg())},
        "measures": measures,
        "ratios": ratios(measures, TARGETS),
        "context_ratios": ratios(measures, CONTEXT),
        "p99": latencies(measures),
        "projections": ctx.extra.get("projections", []),
    }


def save(result: Json) -> Path:
    folder = SMOKE if result["kind"] == "quick" else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = result["started"].replace(":", "").replace("-", "").split("+")[0]
    path = folder / f"{stamp}Z-{result['kind']}-{result['commit'][:12]}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def latest(folder: Path = RESULTS) -> Path | None:
    """The newest full run's results; the newest partial one if no full run was kept."""
    runs = sorted(folder.glob("*.json"))
    full = [p for p in runs if "-full-" in p.name]
    chosen = full or runs
    return chosen[-1] if chosen else None


def last_full(count: int, folder: Path = RESULTS) -> list[Path]:
    """The `count` newest full runs' results, oldest first."""
    return sorted(folder.glob("*-full-*.json"))[-count:]


def load(path: Path) -> Json:
    result: Json = orjson.loads(path.read_bytes())
    return result


def failures(result: Json) -> list[str]:
    """Each ratio below its target (or not measured) and each p99 above its ceiling."""
    out = []
    for r in result["ratios"]:
        if r["value"] is None:
            out.append(f"{r['label']}: not measured (target >= {r['target']})")
        elif not r["ok"]:
            out.append(f"{r['label']} = {r['value']:.2f}, below its target >= {r['target']}")
    for p in result["p99"]:
        if p["p99_ms"] is None:
            out.append(f"p99 {p['measure']}: not measured (ceiling {p['ceiling_ms']:.0f} ms)")
        elif not p["ok"]:
            out.append(f"p99 {p['measure']} = {p['p99_ms']:.1f} ms, above its ceiling "
                       f"{p['ceiling_ms']:.0f} ms")
    return out


def commit() -> str:
    """The commit measured; `-dirty` when the working copy had changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> Json:
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    return {"cpu_count": os.cpu_count(), "memory_gib": memory, "system": platform.system(),
            "release": platform.release(), "machine": platform.machine(),
            "python": platform.python_version()}
