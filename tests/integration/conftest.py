"""Fixtures of the integration tests: fresh contract topics; a store with the console on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dev.services import unique_topic_prefix
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.topics import Topics
from infra.service import Service
from tests.conftest import FixedClock
from tests.integration.kafka_helpers import create_topics


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    """The contract's topics under a prefix of their own (a module may override it)."""
    made = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, made)
    return made


@pytest.fixture
def console_service(env_for: dict[str, str], clock: FixedClock) -> Iterator[Service]:
    """A store with the console's pages on (GIFTCARDS_CONSOLE), on the test's backend."""
    svc = build(load_settings({**env_for, "GIFTCARDS_CONSOLE": "on"}), clock=clock)
    yield svc
    svc.close()
