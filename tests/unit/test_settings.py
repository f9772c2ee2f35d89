"""One Settings holds every GIFTCARDS_* variable, validated once; the composition root builds
from it alone; known environments only, production keys with real entropy, CLI exit 2."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from composition.bootstrap import build_projector
from infra.config import PROJECTION_BATCH, ConfigError, load_settings
from infra.config_keys import estimated_bits
from projections.config import FraudConfig

GOOD_KEY = secrets.token_urlsafe(48)
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
KEY = "k" * 40


def env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"GIFTCARDS_DATA_DIR": str(tmp_path), "GIFTCARDS_SECRET_KEY": KEY, **more}


def test_views_batch_and_fraud_file_come_from_settings(tmp_path: Path) -> None:
    fraud = tmp_path / "fraud.toml"
    fraud.write_text("[fraud]\nf1_unknown_codes = 9\n")
    views = f"sqlite:///{tmp_path / 'views.sqlite3'}"
    settings = load_settings(env(tmp_path, GIFTCARDS_VIEWS_URL=views,
                                 GIFTCARDS_PROJECTION_BATCH="50",
                                 GIFTCARDS_FRAUD_CONFIG=str(fraud)))
    assert (settings.views_url, settings.projection_batch) == (views, 50)
    projector = build_projector(settings)
    try:
        assert projector.config.f1_unknown_codes == 9
        assert (tmp_path / "views.sqlite3").exists()
    finally:
        projector.db.close()


def test_defaults_put_views_beside_the_store(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path))
    assert settings.views_url == settings.database_url
    assert settings.projection_batch == PROJECTION_BATCH and settings.fraud_config is None
    assert build_projector(settings).config == FraudConfig()


@pytest.mark.parametrize(("name", "value"), [
    ("GIFTCARDS_VIEWS_URL", "mysql://x"),
    ("GIFTCARDS_PROJECTION_BATCH", "0"),
    ("GIFTCARDS_PROJECTION_BATCH", "many"),
])
def test_bad_values_are_named_in_a_config_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env(tmp_path, **{name: value}))


def test_r9_views_close_months_in_the_markets_file_time_zone(tmp_path: Path) -> None:
    """GIFTCARDS_MARKETS_FILE reaches the views: FR moved to Tokyo closes months there."""
    default = Path(__file__).resolve().parents[2] / "domain" / "markets.toml"
    moved = tmp_path / "markets.toml"
    moved.write_text(default.read_text().replace('"Europe/Paris"', '"Asia/Tokyo"'))
    late = "2026-05-31T20:00:00Z"  # 22:00 in Paris, already June 1st in Tokyo
    paris = build_projector(load_settings(env(tmp_path)))
    tokyo = build_projector(load_settings(env(tmp_path, GIFTCARDS_MARKETS_FILE=str(moved))))
    try:
        # Each projector closes months with the markets it was built from: building the
        # second does not change the first (no process-wide markets).
        assert tokyo.zones.month_of("FR", late) == "2026-06"
        assert paris.zones.month_of("FR", late) == "2026-05"
    finally:
        paris.db.close()
        tokyo.db.close()


def test_every_variable_settings_read_is_in_the_configuration_reference() -> None:
    """The table moved from the README to docs/reference/configuration.md, generated
    from infra.config_reference.VARIABLES (tests/e2e/test_docs.py checks the page is not stale)."""
    from infra.config_reference import VARIABLES

    root = Path(__file__).resolve().parents[2]
    source = "".join(path.read_text() for path in (root / "infra").glob("config*.py"))
    read = set(re.findall(r'"((?:GIFTCARDS|KAFKA)_[A-Z_]+)"', source))
    table = (root / "docs" / "reference" / "configuration.md").read_text()
    assert len(read) >= 13
    assert sorted(name for name in read if f"`{name}`" not in table) == []
    assert set(VARIABLES) == read  # described exactly what is read


def bare_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """No key given: the tests below choose it. Mail goes over TLS (production refuses
    anything else; tests/unit/test_transport_security_settings.py)."""
    return {"GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
            "GIFTCARDS_SMTP_URL": "smtps://mail.example.com", **more}


@pytest.mark.parametrize("mode", ["development", "test", "production"])
def test_known_environments_are_accepted(tmp_path: Path, mode: str) -> None:
    settings = load_settings(bare_env(tmp_path, GIFTCARDS_ENV=mode, GIFTCARDS_SECRET_KEY=GOOD_KEY))
    assert settings.env == mode
    assert settings.production is (mode == "production")


@pytest.mark.parametrize("mode", ["Production", "prod", "PRODUCTION", " production", "", "dev"])
def test_unknown_environments_are_refused_naming_the_accepted_ones(
    tmp_path: Path, mode: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(bare_env(tmp_path, GIFTCARDS_ENV=mode, GIFTCARDS_SECRET_KEY=GOOD_KEY))
    assert "development, test, production" in str(refused.value)
    assert not (tmp_path / "var" / "dev-secret.key").exists(), "no dev key made for a typo"


@pytest.mark.parametrize(
    "key",
    [" " * 32, "a" * 32, "ab" * 16, "password" * 4, "0123456789abcdef" * 2, "abcd" * 20],
)
def test_production_refuses_keys_with_little_entropy(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(bare_env(tmp_path, GIFTCARDS_ENV="production", GIFTCARDS_SECRET_KEY=key))
    message = str(refused.value)
    assert "entropy" in message and "secrets.token_urlsafe(48)" in message
    assert key.strip() == "" or key not in message, "the refusal must not echo the key"


def test_production_accepts_a_generated_key_and_outside_production_the_rule_is_off(
    tmp_path: Path,
) -> None:
    for _ in range(20):  # the estimate holds for any draw, not one lucky key
        key = secrets.token_urlsafe(48)
        assert estimated_bits(key) >= 128
        load_settings(bare_env(tmp_path, GIFTCARDS_ENV="production", GIFTCARDS_SECRET_KEY=key))
    assert load_settings(bare_env(tmp_path, GIFTCARDS_ENV="test", GIFTCARDS_SECRET_KEY="a" * 32))


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
        env={**clean, **bare_env(tmp_path, **variables)},
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert shown.returncode == 2, shown.stderr[-2000:]
    payload = orjson.loads(shown.stdout)
    assert payload["error"]["code"] == "invalid_configuration"
    assert words in payload["error"]["message"]
    assert b"Traceback" not in shown.stderr
