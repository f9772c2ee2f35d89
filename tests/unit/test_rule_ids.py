"""Every rule id cited in code, tests and docs (R1-R21, P1-P5) is stated in docs/rules.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "rules.md"

# A rule id as prose cites it (`R17`, `P4`, `R9-R14`) or as a test name does (`test_r9_...`,
# `..._p5_r21_...`). `P99` (a percentile) and `R0` (a made-up request id) are not rule ids.
CITED = re.compile(r"(?<![A-Za-z0-9])([RP][1-9][0-9]?)(?![0-9])|(?<=_)([rp][1-9][0-9]?)(?=_)")
PERCENTILE = re.compile(r"P[0-9]{2}")


def anchors() -> set[str]:
    return set(re.findall(r"\{#([a-z0-9-]+)\}", RULES.read_text(encoding="utf-8")))


def cited_ids() -> dict[str, str]:
    """Each cited id (lower case, as its anchor) with one place that cites it."""
    out = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.toml", "*.yml", "*.yaml"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    found: dict[str, str] = {}
    for path in out.stdout.split():
        if path == "CHANGELOG.md":
            continue
        text = (ROOT / path).read_text(encoding="utf-8", errors="ignore")
        for number, line in enumerate(text.splitlines(), 1):
            for match in CITED.finditer(line):
                rule = match.group(1) or match.group(2)
                if not PERCENTILE.fullmatch(rule):
                    found.setdefault(rule.lower(), f"{path}:{number}")
    return found


def test_every_cited_rule_id_resolves_in_docs_rules() -> None:
    known = anchors()
    unresolved = {rule: where for rule, where in cited_ids().items() if rule not in known}
    assert unresolved == {}, f"rule ids without an entry in docs/rules.md: {unresolved}"


def test_docs_rules_states_every_rule_of_the_terms_and_the_policy_once() -> None:
    text = RULES.read_text(encoding="utf-8")
    expected = [f"r{n}" for n in range(1, 22)] + [f"p{n}" for n in range(1, 6)]
    for rule in expected:
        assert text.count(f"{{#{rule}}}") == 1, rule
    assert set(expected) <= anchors()


def test_each_rule_names_its_source_section() -> None:
    """Every entry says where it comes from, so a reader can check it against the source."""
    entries = re.split(r"\n### ", RULES.read_text(encoding="utf-8"))[1:]
    assert len(entries) == 26
    for entry in entries:
        assert "*Source:* terms §" in entry or "*Source:* policy" in entry, entry[:40]


def test_nothing_points_outside_the_repository_for_the_rules() -> None:
    digest = "shared" + "/spec"  # the digest's old place, beside the repository
    out = subprocess.run(["git", "grep", "-n", digest], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.stdout == ""
