"""Settings validation: known environments only, production keys with real entropy, CLI exit 2."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from infra.config import ConfigError, estimated_bits, load_settings

GOOD_KEY = secrets.token_urlsafe(48)
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"GIFTCARDS_DATA_DIR": str(tmp_path / "var"), **more}


@pytest.mark.parametrize("mode", ["development", "test", "production"])
def test_known_environments_are_accepted(tmp_path: Path, mode: str) -> None:
    settings = load_settings(env(tmp_path, GIFTCARDS_ENV=mode, GIFTCARDS_SECRET_KEY=GOOD_KEY))
    assert settings.env == mode
    assert settings.production is (mode == "production")


@pytest.mark.parametrize("mode", ["Production", "prod", "PRODUCTION", " production", "", "dev"])
def test_unknown_environments_are_refused_naming_the_accepted_ones(
    tmp_path: Path, mode: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(env(tmp_path, GIFTCARDS_ENV=mode, GIFTCARDS_SECRET_KEY=GOOD_KEY))
    assert "development, test, production" in str(refused.value)
    assert not (tmp_path / "var" / "dev-secret.key").exists(), "no dev key made for a typo"


@pytest.mark.parametrize(
    "key",
    [" " * 32, "a" * 32, "ab" * 16, "password" * 4, "0123456789abcdef" * 2, "abcd" * 20],
)
def test_production_refuses_keys_with_little_entropy(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(env(tmp_path, GIFTCARDS_ENV="production", GIFTCARDS_SECRET_KEY=key))
    message = str(refused.value)
    assert "entropy" in message and "secrets.token_urlsafe(48)" in message
    assert key.strip() == "" or key not in message, "the refusal must not echo the key"


def test_production_accepts_a_generated_key_and_outside_production_the_rule_is_off(
    tmp_path: Path,
) -> None:
    for _ in range(20):  # the estimate holds for any draw, not one lucky key
        key = secrets.token_urlsafe(48)
        assert estimated_bits(key) >= 128
        load_settings(env(tmp_path, GIFTCARDS_ENV="production", GIFTCARDS_SECRET_KEY=key))
    assert load_settings(env(tmp_path, GIFTCARDS_ENV="test", GIFTCARDS_SECRET_KEY="a" * 32))


def test_entropy_estimate() -> None:
    assert estimated_bits("a" * 32) == 0
    assert estimated_bits("ab" * 16) == 2, "a repeated unit counts once"
    assert estimated_bits("0123456789abcdef" * 2) == 64
    assert estimated_bits("0123456789abcdef" * 2 + "x") > 128, "no longer a repetition"
    assert estimated_bits(secrets.token_urlsafe(48)) > 300


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"GIFTCARDS_ENV": "prod"}, "GIFTCARDS_ENV must be one of"),
        ({"GIFTCARDS_ENV": "production", "GIFTCARDS_SECRET_KEY": "a" * 32}, "entropy"),
        ({"GIFTCARDS_RELAY_LEASE_SECONDS": "0"}, "at least 1"),
    ],
)
def test_cli_turns_a_config_error_into_exit_2_and_one_json_error(
    tmp_path: Path, variables: dict[str, str], words: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GIFTCARDS_")}
    shown = subprocess.run(
        [GIFTCARDS, "--json", "liability"],
        env={**clean, **env(tmp_path, **variables)},
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert shown.returncode == 2, shown.stderr[-2000:]
    payload = orjson.loads(shown.stdout)
    assert payload["error"]["code"] == "invalid_configuration"
    assert words in payload["error"]["message"]
    assert b"Traceback" not in shown.stderr
