"""The README's quickstart is executed as written: its first command must show a card's life."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_the_two_commands_ci_runs() -> None:
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_quickstart_runs_the_lifecycle(tmp_path: Path) -> None:
    env = {**os.environ, "GIFTCARDS_DEMO_DIR": str(tmp_path / "demo")}
    env.pop("GIFTCARDS_DATABASE_URL", None)
    done = subprocess.run(
        readme_commands()[0].split(),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for expected in ('"status": "redeemed"', '"code": "unknown_code"', '"status": "expired"',
                     '"forfeited": 500', '"after_use": 500', '"to_new_card": 4500',
                     '"outstanding": 5000', '"expired": 4500',
                     '"ok": true', "Demo complete"):
        assert expected in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    # The printed commands paste and run as shown (quoting, variables, the venv's
    # command), here the purchase with its two-word message, replayed on the demo's store.
    [shown] = [line[2:] for line in done.stdout.splitlines()
               if line.startswith("$ ") and "--message" in line]
    assert "'Joyeux anniversaire'" in shown and ".venv/bin/giftcards" in shown
    pasted = subprocess.run(["bash", "-c", shown], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert pasted.returncode == 0, pasted.stderr
    assert '"replayed":true' in pasted.stdout
    # The commands printed at the end, to look at the demo's store, run as printed too.
    tail = done.stdout.split("To look at it with the CLI:\n", 1)[1]
    follow = [line.strip() for line in tail.splitlines() if line.startswith("  ")]
    assert any(" history " in line for line in follow), follow
    looked = subprocess.run(["bash", "-ec", "\n".join(follow)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert looked.returncode == 0, looked.stdout[-1000:] + looked.stderr[-1000:]
    # …and the README says how to use the CLI on the demo's store afterwards.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "GIFTCARDS_DATA_DIR=var/demo" in readme and ".venv/bin/giftcards" in readme
