"""What ships: the wheel (and so the Docker image) holds the service, never dev tooling or bench."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {"domain", "application", "infra", "consumers", "projections", "composition",
           "entrypoints"}


def test_wheel_holds_the_service_and_no_dev_or_bench_module(tmp_path: Path) -> None:
    # A copy: setuptools leaves build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".cache", ".git", "var", "build", "*.egg-info", "__pycache__", ".*_cache"))
    # With build isolation, exactly as `pip install .` in the Dockerfile builds it.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=240,
    )
    (wheel,) = tmp_path.glob("giftcards-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("giftcards-")}
    assert tops == SHIPPED
    assert "domain/markets.toml" in names and "entrypoints/cli/main.py" in names
    for banned in ("kafka_dev", "pg_dev", "launcher", "demo", "services", "bench", "tests"):
        assert not [n for n in names if re.search(rf"(^|/){banned}(/|\.py$)", n)], banned


def test_docker_image_copies_exactly_the_shipped_packages() -> None:
    copied = re.findall(r"^COPY (\S+) \1$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert set(copied) == SHIPPED
