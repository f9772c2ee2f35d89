"""Every row of the guarantees table (docs/evidence-formats.md) names tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_guarantee_row_names_existing_tests() -> None:
    text = (ROOT / "docs" / "evidence-formats.md").read_text()
    table = text[text.index("## Guarantees"):]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "test" in line
            and not line.startswith("| tampering")]
    defined = {m for path in (ROOT / "tests").rglob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)}
    assert len(rows) >= 12
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row)
        out_of_reach = "out of reach" in row
        assert named or out_of_reach, row
        assert set(named) <= defined, (row, set(named) - defined)
