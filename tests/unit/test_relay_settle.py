"""What the relay says after each init: Kafka's committed position and what became of a commit
whose answer never came (the line that would have named a duplicate's cause)."""

from __future__ import annotations

import logging

import pytest

from infra.bootstrap import Service
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics


def test_an_unanswered_commit_is_reported_committed_aborted_or_unclear(
    memory_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(memory_service, "127.0.0.1:1", Topics("t-"), transactional_id="t-relay")
    with caplog.at_level(logging.INFO, logger="giftcards.relay"):
        for read, outcome in ((8, "committed"), (2, "aborted"), (7, "unclear")):
            relay._uncertain = (7, 8)
            assert relay._settled(read) == read
            assert f"the unanswered commit of positions 7-8 was {outcome}" in caplog.text
            assert f"Kafka's committed position is {read}" in caplog.text
            assert relay._uncertain is None
            caplog.clear()
        relay._settled(9)
        assert "unanswered" not in caplog.text  # only after a commit that got no answer


def test_a_committed_position_below_a_confirmed_commit_is_an_error_yet_kafka_decides(
    memory_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(memory_service, "127.0.0.1:1", Topics("t-"), transactional_id="t-relay")
    relay._confirmed = 8
    with caplog.at_level(logging.INFO, logger="giftcards.relay"):
        # Republishing what Kafka does not show committed risks a duplicate, never a loss.
        assert relay._settled(2) == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "is below 8, whose commit the broker confirmed" in errors[0].message
