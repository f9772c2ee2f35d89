"""Time from one place: an instance whose clock is an hour behind (Debian's `faketime`) measures
its offset to the database's clock and refuses work; leases are decided on the database's clock."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any

import orjson
import pytest

from dev.services import unique_topic_prefix
from infra.db import Database
from infra.dbclock import ClockSkewError, DatabaseClock
from infra.kafka.topics import Topics
from infra.lease import Lease
from tests.faults.processes import GIFTCARDS
from tests.faults.test_relay_faults import kafka_env

pytestmark = [pytest.mark.serial, pytest.mark.faults, pytest.mark.timeout(120)]
HOUR_BEHIND = ["faketime", "-f", "-1h"]
# Monotonic time stays true: only the wall clock is an hour off, as on a host whose NTP failed.
FAKETIME_ENV = {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}
MEASURED_HOUR_BEHIND = re.compile(r"clock is -3[56]\d\d\.\d s off the database's")


def giftcards(env: dict[str, str], *args: str, prefix: list[str] | None = None
              ) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([*(prefix or []), GIFTCARDS, "--json", *args],
                          env={**os.environ, **env, **FAKETIME_ENV}, capture_output=True,
                          timeout=90, check=False)
    return done.returncode, orjson.loads(done.stdout.splitlines()[-1]) if done.stdout else {}


def purchase(env: dict[str, str], order_id: str, prefix: list[str] | None = None
             ) -> tuple[int, dict[str, Any]]:
    return giftcards(env, "purchase", "--market", "FR", "--amount", "50", "--payment-method",
                     "card", "--buyer-id", "C1", "--order-id", order_id, prefix=prefix)


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_host_an_hour_behind_records_no_event_and_names_its_measured_offset(
    env_for: dict[str, str],
) -> None:
    code, answer = purchase(env_for, "skewed-1", prefix=HOUR_BEHIND)
    assert code == 2, answer
    assert answer["error"]["code"] == "clock_skew_exceeded", answer
    assert MEASURED_HOUR_BEHIND.search(answer["error"]["message"]), answer
    # The same order from a host on time: bought once, dated on the database's clock.
    code, answer = purchase(env_for, "skewed-1")
    assert code == 0, answer


@pytest.mark.parametrize("backend", ["postgres"])
def test_serve_on_a_host_an_hour_behind_refuses_to_start_with_the_measured_offset(
    env_for: dict[str, str], kafka_bootstrap: str
) -> None:
    env = kafka_env(env_for, kafka_bootstrap, Topics(unique_topic_prefix()))
    code, answer = giftcards(env, "serve", "--without-projections", prefix=HOUR_BEHIND)
    assert code == 2 and answer["error"]["code"] == "clock_skew_exceeded", answer
    assert MEASURED_HOUR_BEHIND.search(answer["error"]["message"]), answer


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_lease_held_by_a_host_an_hour_behind_is_taken_over_when_it_expires_not_an_hour_later(
    env_for: dict[str, str],
) -> None:
    from infra.lease import TABLE

    db = Database(env_for["GIFTCARDS_DATABASE_URL"])
    try:
        db.execute(TABLE)
        # A bound wide enough to let the skewed host work: its decisions must still be right.
        behind = DatabaseClock(db, 7200, local=lambda: time.time() - 3600)
        on_time = DatabaseClock(db, 7200)
        slow = Lease(db, "skew-test", "slow", 1.0, clock=behind.epoch)
        other = Lease(db, "skew-test", "other", 1.0, clock=on_time.epoch)
        assert slow.acquire() and not other.acquire()
        deadline = time.monotonic() + 5
        while not other.acquire():
            assert time.monotonic() < deadline, "the lease of the slow host did not expire"
            time.sleep(0.1)
        assert not slow.acquire()  # nor does the slow host think its lease still runs
        # With the default bound, the slow host takes no lease at all.
        with pytest.raises(ClockSkewError, match=r"-3[56]"):
            Lease(db, "skew-test", "slow", 1.0,
                  clock=DatabaseClock(db, 2.0, local=lambda: time.time() - 3600).epoch).acquire()
    finally:
        db.close()
