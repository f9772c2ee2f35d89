"""The repository carries nothing of the machine it was made on: a clone works anywhere."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Places that exist only on someone's machine: working copies, homes, a shell's job folders.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home/[\w.-]+|Users/[\w.-]+)/|bash_jobs\.")


def tracked() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.fail("the hygiene checks need the git checkout they run in")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def link_problem(path: str) -> str | None:
    """Why a tracked symbolic link would break a clone elsewhere, or None."""
    full = ROOT / path
    if not full.is_symlink():
        return None
    target = os.readlink(full)
    if os.path.isabs(target):
        return f"{path} -> {target}: an absolute path"
    if not (full.parent / target).resolve().is_relative_to(ROOT):
        return f"{path} -> {target}: outside the repository"
    return None


def test_no_tracked_link_points_to_an_absolute_path_or_outside_the_repository() -> None:
    problems = [p for path in tracked() if (p := link_problem(path))]
    assert problems == []


def test_no_tracked_file_names_a_path_of_the_machine_it_was_made_on() -> None:
    hits = []
    for path in tracked():
        full = ROOT / path
        if full.is_symlink() or not full.is_file() or full.stat().st_size > 2_000_000:
            continue
        text = full.read_bytes().decode("utf-8", errors="ignore")
        hits += [f"{path}: {m.group(0)}" for m in MACHINE_PATH.finditer(text)]
    assert hits == []


def test_the_checks_find_what_they_look_for() -> None:
    """The two checks above can fail: a link out and a machine path are both found."""
    elsewhere = "/" + "work/wt/merge/.venv"  # spelled in two parts: this file is scanned too
    assert MACHINE_PATH.search(f"see {elsewhere}")
    assert MACHINE_PATH.search("cd /" + "home/alice/src")
    assert not MACHINE_PATH.search("GET /v1/cards/x and docs/work/notes")
    inside = ROOT / "tests" / ".hygiene-probe-link"
    inside.symlink_to(elsewhere)
    try:
        assert link_problem(str(inside.relative_to(ROOT))) == (
            f"tests/.hygiene-probe-link -> {elsewhere}: an absolute path"
        )
    finally:
        inside.unlink()
