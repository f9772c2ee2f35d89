"""What the relay says after each init: Kafka's committed position and what became of a commit
whose answer never came (the line that would have named a duplicate's cause)."""

from __future__ import annotations

import logging

import pytest

from infra.bootstrap import Service
from infra.kafka.positions import PositionBelowFloorError
from infra.kafka.relay import Relay
from infra.kafka.topics import Topics


def test_an_unanswered_commit_is_reported_committed_aborted_or_unclear(
    memory_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(memory_service, "127.0.0.1:1", Topics("t-"), transactional_id="t-relay")
    with caplog.at_level(logging.INFO, logger="giftcards.relay"):
        for read, outcome in ((8, "committed"), (2, "aborted"), (7, "unclear")):
            relay.publisher.uncertain = (7, 8)
            assert relay.publisher.settled(read) == read
            assert f"the unanswered commit of positions 7-8 was {outcome}" in caplog.text
            assert f"Kafka's committed position is {read}" in caplog.text
            assert relay.publisher.uncertain is None
            caplog.clear()
        relay.publisher.settled(9)
        assert "unanswered" not in caplog.text  # only after a commit that got no answer


def test_r3_a_committed_position_below_a_confirmed_commit_stops_the_relay_instead_of_republishing(
    memory_service: Service,
) -> None:
    relay = Relay(memory_service, "127.0.0.1:1", Topics("t-"), transactional_id="t-relay")
    relay.publisher.confirmed = 8
    # Publishing again from 3 would put events 3-8 on the topic a second time.
    with pytest.raises(PositionBelowFloorError, match=r"position 2 .* is below 8"):
        relay.publisher.settled(2)
    assert relay.publisher.settled(8) == 8
