"""The console's charting library is served from the service itself (no CDN): the committed copy
is byte for byte the file of the version pinned in dev/console/package-lock.json, which `npm ci`
(`make console-charts`, a prerequisite of `make test`) checks against the lock's integrity."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "entrypoints" / "console" / "static"
PINNED = ROOT / "dev" / "console"


def test_the_served_chart_library_is_the_pinned_release_with_its_licences() -> None:
    lock = json.loads((PINNED / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/chart.js"]
    assert pinned["version"] == json.loads((PINNED / "package.json").read_text())[
        "dependencies"]["chart.js"]
    assert pinned["integrity"].startswith("sha512-")
    installed = PINNED / "node_modules" / "chart.js"
    assert installed.is_dir(), "run `make console-charts` (npm ci of dev/console)"
    assert json.loads((installed / "package.json").read_text())["version"] == pinned["version"]
    served = (STATIC / "chart.umd.min.js").read_bytes()
    assert served == (installed / "dist" / "chart.umd.min.js").read_bytes()
    assert f"Chart.js v{pinned['version']}".encode() in served[:200]
    # MIT: the licence travels with the copy (the bundle includes @kurkle/color).
    assert (STATIC / "chart.js.LICENSE.md").read_bytes() == (installed / "LICENSE.md").read_bytes()
    kurkle = PINNED / "node_modules" / "@kurkle" / "color" / "LICENSE.md"
    assert (STATIC / "kurkle-color.LICENSE.md").read_bytes() == kurkle.read_bytes()
