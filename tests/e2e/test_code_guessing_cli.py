"""R8 through the real CLI: anonymous guesses count against the `cli` source, then exit 1."""

from __future__ import annotations

from pathlib import Path

from domain.markets import DEFAULT_MARKETS_FILE
from tests.e2e.test_cli import BUY, SQLITE_ONLY, T0, assert_error, cli

LIMIT = 2  # fewer than the default 10: each CLI run is a process start


@SQLITE_ONLY
def test_r8_cli_guessing_is_locked_out_with_exit_1(env_for: dict[str, str], tmp_path: Path) -> None:
    shipped = DEFAULT_MARKETS_FILE.read_text()
    assert "max_unknown_codes = 10" in shipped
    markets = tmp_path / "markets.toml"
    markets.write_text(shipped.replace("max_unknown_codes = 10", f"max_unknown_codes = {LIMIT}"))
    env_for = {**env_for, "GIFTCARDS_MARKETS_FILE": str(markets)}
    rc, card, _ = cli(env_for, T0, *BUY, "--amount", "50", "--order-id", "b-1")
    assert rc == 0
    redeem = ["redeem", "--market", "FR", "--order-total", "80"]
    for i in range(LIMIT):
        wrong = cli(env_for, T0, *redeem, "--code", f"ABCDEF-GHJKMN-PQR{i:03d}", "--order-id",
                    f"s-{i}")
        assert_error(wrong, 1, "unknown_code")
    locked = cli(env_for, T0, *redeem, "--code", card["code"], "--order-id", "s-valid")
    assert_error(locked, 1, "too_many_attempts")
    assert card["code"] not in str(locked)
    # Naming a customer does not reopen the locked-out CLI source (R8).
    named = cli(env_for, T0, *redeem, "--code", card["code"], "--order-id", "s-valid",
                "--customer-id", "c2")
    assert_error(named, 1, "too_many_attempts")
