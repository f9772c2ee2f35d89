"""The rate-limited log: one line per key and interval, the held-back count said, backoff capped."""

from __future__ import annotations

import logging

import pytest

from infra.ratelog import RateLimitedLog, backoff
from tests.conftest import Ticks as Clock


def test_one_line_per_key_per_interval_then_the_held_back_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    waits = RateLimitedLog(logging.getLogger("test.ratelog"), interval=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        logged = []
        for second in range(35):  # a wait of 35 s, retried every second
            clock.now = 1000.0 + second
            logged.append(waits.warning("broker", "waiting for %s", "Kafka"))
        assert waits.info("database", "waiting for PostgreSQL"), "keys are independent"
    assert [i for i, done in enumerate(logged) if done] == [0, 10, 20, 30]
    lines = [r.getMessage() for r in caplog.records if "Kafka" in r.getMessage()]
    assert lines[0] == "waiting for Kafka"
    assert lines[1:] == ["waiting for Kafka (9 similar lines held back)"] * 3
    assert caplog.records[0].levelno == logging.WARNING


def test_reset_lets_the_next_wait_through_at_once() -> None:
    clock = Clock()
    waits = RateLimitedLog(logging.getLogger("test.ratelog"), interval=10, clock=clock)
    assert waits.info("k", "first")
    assert not waits.info("k", "again")
    waits.reset("k")
    assert waits.info("k", "a new wait")


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n) for n in range(1, 7)] == [0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff(10_000) == 5.0
    assert backoff(3, base=0.5, cap=10) == 4.0
