"""A store written before the chain key loads, is named unsealed, and after one `audit seal`
(sealing events under the chain key, then a signed checkpoint) verifies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.test_cli import cli
from tests.fixtures.make_old_store import STORE

NOW = "2026-09-01T10:00:00Z"


@pytest.mark.parametrize("backend", ["sqlite"])  # the fixture store is a SQLite file
def test_old_store_is_sealed_and_signed_in_one_step_then_verifies(
    env_for: dict[str, str], tmp_path: Path
) -> None:
    copy = tmp_path / "old" / "store.sqlite3"
    copy.parent.mkdir()
    shutil.copyfile(STORE, copy)
    env = {**env_for, "GIFTCARDS_DATABASE_URL": f"sqlite:///{copy}"}
    status, before, _ = cli(env, NOW, "audit", "verify", "--all")
    assert status == 1
    assert {p["problem"].split(":")[0] for p in before["problems"]} == {
        "the card's last event is not sealed under the chain key"}
    status, sealed, err = cli(env, NOW, "audit", "seal")
    assert status == 0, err
    assert sealed["sealed"] == 6 and sealed["checkpoint"]["ok"]
    assert sealed["checkpoint"]["cards"] == 6
    status, after, _ = cli(env, NOW, "audit", "verify", "--all")
    assert status == 0 and after["ok"] and after["not_yet_checkpointed"] == 0, after["problems"]
