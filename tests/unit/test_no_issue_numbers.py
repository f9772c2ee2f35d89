"""Code, tests and docs say the behaviour, not the tracker's numbers (CHANGELOG.md tells it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ISSUE_NUMBER = re.compile(r"[Ii]ssue [0-9]+|issue[-_ ]?#?[0-9]+")
WHERE_THE_STORY_LIVES = {"CHANGELOG.md"}


def tracked_text_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    paths = [p for p in out.stdout.decode().split("\0") if p and p not in WHERE_THE_STORY_LIVES]
    return [p for p in paths if (ROOT / p).is_file() and not (ROOT / p).is_symlink()]


def issue_numbers(text: str) -> list[str]:
    return [m.group(0) for m in ISSUE_NUMBER.finditer(text)]


def test_the_pattern_finds_the_ways_an_issue_number_is_written() -> None:
    # Written with a placeholder, so that this file passes its own check.
    for shape in ("issue {}", "Issue {} finding 2", "test_r21_issue{}_f9", "issue-{}", "issue #{}"):
        assert issue_numbers(shape.format(17)), shape
    assert issue_numbers("the issue note, an issuer, R17, f9") == []


def test_no_issue_number_in_code_tests_or_docs() -> None:
    hits = []
    for path in tracked_text_files():
        raw = (ROOT / path).read_bytes()
        if b"\0" in raw[:8192]:
            continue  # binary: a fixture store, an image
        for number, line in enumerate(raw.decode("utf-8", errors="ignore").splitlines(), 1):
            hits += [f"{path}:{number}: {hit}" for hit in issue_numbers(line)]
    assert hits == [], "say the behaviour (the story goes in CHANGELOG.md):\n" + "\n".join(hits)
