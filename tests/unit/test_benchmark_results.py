"""The bench's figures cannot go stale: docs/benchmarks.md is the latest kept results, and
`python -m bench --check` names each ratio below its target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from bench import page, results


def test_the_benchmarks_page_is_generated_from_the_latest_kept_results() -> None:
    latest = results.latest()
    assert latest is not None, "no bench results kept in bench/results/"
    assert page.PAGE.read_text(encoding="utf-8") == page.expected(), (
        "stale: docs/benchmarks.md; run `python -m bench.page`")


def a_run(rates: dict[str, float], kind: str = "full") -> dict[str, Any]:
    measures = {name: {"count": int(rate), "seconds": 1.0, "rate": rate, "note": "",
                       "p99_ms": 10.0, "spread": None} for name, rate in rates.items()}
    return {"kind": kind, "sections": ["checkout", "relay", "http", "projections"],
            "started": "2026-01-01T00:00:00+00:00", "commit": "0" * 40,
            "ratios": results.ratios(measures, results.TARGETS),
            "p99": results.latencies(measures)}


def every_target_met() -> dict[str, float]:
    rates: dict[str, float] = {}
    for ratio in results.TARGETS:
        rates.setdefault(ratio.baseline, 100.0)
        rates[ratio.measure] = max(rates.get(ratio.measure, 0.0),
                                   rates[ratio.baseline] * ratio.target)
    rates.update({name: 100.0 for name, _ in results.P99_MS if name not in rates})
    return rates


def check(tmp_path: Path, run: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "run.json"
    path.write_bytes(orjson.dumps(run))
    return subprocess.run([sys.executable, "-m", "bench", "--check", str(path)],
                          cwd=results.ROOT, capture_output=True, text=True, timeout=60)


def test_check_passes_a_full_run_that_meets_every_target(tmp_path: Path) -> None:
    done = check(tmp_path, a_run(every_target_met()))
    assert done.returncode == 0, done.stderr
    assert "every target met" in done.stdout


def test_check_names_each_ratio_below_its_target_and_each_unmeasured_one(tmp_path: Path) -> None:
    rates = every_target_met()
    rates[results.B] = rates[results.A] * 2.23  # b/a as measured on a fresh clone of main
    del rates["rebuild from kafka"]
    done = check(tmp_path, a_run(rates))
    assert done.returncode == 1
    failed = [line for line in done.stderr.splitlines() if line.startswith("BELOW TARGET")]
    assert any("b/a = 2.23, below its target >= 8.0" in line for line in failed), done.stderr
    assert any("rebuild from kafka / c': not measured" in line for line in failed), done.stderr
    assert not any("d/c" in line or "f/f0" in line for line in failed), done.stderr


def test_check_refuses_a_partial_run_even_if_its_ratios_pass(tmp_path: Path) -> None:
    done = check(tmp_path, a_run(every_target_met(), kind="partial"))
    assert done.returncode == 1
    assert "not a full run" in done.stderr


def test_the_page_shows_each_target_across_the_last_full_runs_met_only_if_met_in_each() -> None:
    met = a_run(every_target_met())
    slow = every_target_met()
    first = results.TARGETS[0]
    slow[first.measure] = slow[first.baseline] * first.target / 2  # one run below its target
    runs = [met, a_run(slow), met]
    for n, run in enumerate(runs):
        run.update({"started": f"2026-01-0{n + 1}T00:00:00+00:00", "projections": []})
    text = page.render({**met, "finished": "", "load": {"before": [0.0], "after": [0.0]},
                        "machine": {"cpu_count": 2, "memory_gib": 1, "system": "Linux",
                                    "release": "", "machine": "", "python": ""},
                        "context_ratios": [], "measures": {}, "projections": []},
                       "x.json", runs)
    assert "## Across the last 3 full runs" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    below = rows[f"| {first.label} ≥ {first.target}"]
    assert below.endswith("| no |") and below.count(" | ") == 5, below  # 3 runs, spread, verdict
    others = [line for label, line in rows.items()
              if "≥" in label and label != f"| {first.label} ≥ {first.target}"]
    assert others and all(line.endswith("| yes |") for line in others)


AB_FIGURE = re.compile(
    r"([+-]\d+)%[^;()]*\(median of (\d+) pairs, faster in (\d+);\s*`(bench/results/ab/[^`]+)`")


def test_the_a_b_figures_in_the_docs_are_those_of_the_kept_results() -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "operations.md").read_text(encoding="utf-8")
    quoted = AB_FIGURE.findall(text)
    assert quoted, "docs/operations.md quotes no A/B result"
    for gain, pairs, faster, name in quoted:
        kept = orjson.loads((root / name).read_bytes())
        assert (int(gain), int(pairs), int(faster)) == (
            round(kept["median_gain"] * 100), len(kept["pairs"]), kept["faster_in"]), name


def test_a_measure_taken_several_times_is_one_row_at_the_median_rate_with_its_spread() -> None:
    from bench.common import Row, median_row

    runs = [Row("c", 1000, 1.0), Row("c", 1000, 0.5), Row("c", 1000, 2.0)]
    row = median_row(runs, "key + 4 headers")
    assert (row.name, row.rate, row.spread) == ("c", 1000.0, (500.0, 2000.0))
    assert row.note == "key + 4 headers; x3"
