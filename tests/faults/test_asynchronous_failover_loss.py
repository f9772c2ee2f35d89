"""Why production refuses asynchronous replication: a commit the primary acknowledged is gone
after a failover to a standby that had not received it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from dev import patroni_dev
from infra.db import Database
from infra.replication import ReplicationRiskError, check_replication

pytestmark = [pytest.mark.serial, pytest.mark.faults, pytest.mark.postgres,
              pytest.mark.timeout(180)]


def walsender(c: patroni_dev.Cluster, node: int) -> int:
    """The pid of the process streaming `node`'s WAL to the standby."""
    postmaster = patroni_dev.postmaster_pid(c, node)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parent = int(stat[stat.rindex(")") + 2 :].split()[1])
                    name = Path(f"/proc/{entry}/cmdline").read_bytes()
                    if parent == postmaster and b"walsender" in name:
                        return int(entry)
        time.sleep(0.2)
    raise AssertionError(f"node{node} sends no WAL")


def count(url: str) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM payments").fetchone()
    assert row is not None
    return int(row[0])


def test_asynchronous_replication_loses_an_acknowledged_commit_and_production_refuses_it() -> None:
    home = Path(tempfile.mkdtemp(prefix="gc-pat-", dir=tempfile.gettempdir()))
    home.chmod(0o755)
    c = patroni_dev.Cluster(home, patroni_dev.free_base(), synchronous=False)
    try:
        patroni_dev.start_cluster(c)
        db = Database(c.url)
        try:
            with pytest.raises(ReplicationRiskError) as refused:
                check_replication(db, "synchronous", c.url)
            assert refused.value.code == "asynchronous_replication_refused"
        finally:
            db.close()

        primary = patroni_dev.leader(c)
        assert primary is not None
        standby = 1 - primary
        with psycopg.connect(c.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE payments (id TEXT PRIMARY KEY)")
            conn.execute("INSERT INTO payments VALUES ('before')")
        deadline = time.monotonic() + 30
        while True:  # the standby has the first payment
            with contextlib.suppress(psycopg.Error):
                if count(c.node_url(standby)) == 1:
                    break
            assert time.monotonic() < deadline, "the standby never caught up"
            time.sleep(0.2)

        # The standby falls behind (the primary's WAL sender paused, as a slow link would make
        # it); the primary still acknowledges the next commit at once. Then its machine dies.
        sender = walsender(c, primary)
        os.kill(sender, signal.SIGSTOP)
        try:
            with psycopg.connect(c.url, autocommit=True) as conn:
                conn.execute("INSERT INTO payments VALUES ('acknowledged')")
        finally:
            patroni_dev.kill_postgres(c, primary)  # SIGKILL ends the paused sender too
        killed_at = time.monotonic()
        while patroni_dev.leader(c) != standby:
            assert time.monotonic() - killed_at < 60, patroni_dev.members(c)
            time.sleep(0.2)

        # The new primary never had it: an acknowledged payment is gone.
        assert count(c.url) == 1
    finally:
        patroni_dev.remove_cluster(c)
        shutil.rmtree(home, ignore_errors=True)
