"""The dev launchers' TLS option: the dev CA and certificates are made once and reused, and
`pg_dev up --tls` runs a PostgreSQL that takes logins over verified TLS only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from dev import tls_dev
from tests.faults.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_dev_certificates_are_made_once_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLS_DEV_HOME", str(tmp_path / "tls"))
    first = tls_dev.dev_server("kafka")
    made = first.cert.read_bytes()
    again = tls_dev.dev_server("kafka")
    assert again == first and again.cert.read_bytes() == made
    assert first.key.stat().st_mode & 0o777 == 0o600
    assert tls_dev.dev_secret("kafka-giftcards") == tls_dev.dev_secret("kafka-giftcards")
    # A new CA (the old one lost or expired) re-issues the server certificate it signs.
    tls_dev.dev_ca().cert.unlink()
    assert tls_dev.dev_server("kafka").cert.read_bytes() != made


def test_pg_dev_up_tls_takes_verified_tls_logins_only(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="gc-pgtls-", dir=tempfile.gettempdir()))
    env = {**os.environ, "TLS_DEV_HOME": str(tmp_path / "tls"), "PG_DEV_HOME": str(home),
           "PG_DEV_TLS_PORT": str(free_port())}

    def pg_dev(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dev.pg_dev", *args, "--tls"], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    try:
        url = pg_dev("up")
        assert "sslmode=verify-full" in url and str(tmp_path / "tls") in url
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert row.fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(url.replace("sslmode=verify-full", "sslmode=disable")).close()
        assert "no encryption" in str(refused.value)
    finally:
        pg_dev("down")
        shutil.rmtree(home.with_name(f"{home.name}-tls-{env['PG_DEV_TLS_PORT']}"),
                      ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
