"""P2: the data-protection page's table of every place personal data lives is complete, and
every test it names for a place exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "data-protection.md"
# The places a subject's data can reach (store, keys, topics, files, logs, records, copies).
PLACES = (
    "store: events", "vault", "outbox", "topic `giftcard.events`", "topic `order.checkout`",
    "topic `giftcard.dead-letters`", "views", "maildir", "logs", "access log",
    "request register", "checkpoints", "evidence packs", "subject exports", "`/metrics`",
    "backups and PostgreSQL WAL",
)


def table() -> list[list[str]]:
    text = PAGE.read_text()
    section = text.split("## Where personal data lives", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    assert cells[0][0] == "place" and cells[0][-1] == "checked by"
    return cells[1:]


def test_p2_every_place_of_personal_data_is_in_the_table_with_all_its_columns() -> None:
    rows = table()
    listed = [row[0] for row in rows]
    missing = [p for p in PLACES if not any(name.startswith(p) for name in listed)]
    assert missing == []
    assert [row[0] for row in rows if len(row) != 6 or not all(row)] == []


def test_p2_every_test_the_table_names_exists() -> None:
    named = [ref for row in table() for ref in re.findall(r"`(tests/[^`]+)`", row[-1])]
    assert named
    absent = []
    for ref in named:
        path, _, name = ref.partition("::")
        file = ROOT / path
        if not file.exists() or f"def {name}(" not in file.read_text():
            absent.append(ref)
    assert absent == []
