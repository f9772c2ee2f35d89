"""One Settings holds every GIFTCARDS_* variable; the composition root builds from it alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.bootstrap import build_projector
from infra.config import ConfigError, load_settings
from projections import handlers
from projections.config import FraudConfig

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
    assert settings.projection_batch == 1000 and settings.fraud_config is None
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
    try:
        build_projector(load_settings(env(tmp_path)))
        assert handlers.month_of("FR", late) == "2026-05"
        build_projector(load_settings(env(tmp_path, GIFTCARDS_MARKETS_FILE=str(moved))))
        assert handlers.month_of("FR", late) == "2026-06"
    finally:
        build_projector(load_settings(env(tmp_path)))


def test_every_variable_settings_read_is_in_the_readme_table() -> None:
    root = Path(__file__).resolve().parents[2]
    source = (root / "infra" / "config.py").read_text()
    read = set(re.findall(r'"((?:GIFTCARDS|KAFKA)_[A-Z_]+)"', source))
    table = (root / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert len(read) >= 13
    assert sorted(name for name in read if f"`{name}`" not in table) == []
