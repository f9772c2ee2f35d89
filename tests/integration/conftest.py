"""Fixtures of the Kafka integration tests: fresh contract topics per test."""

from __future__ import annotations

import pytest

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.integration.kafka_helpers import create_topics


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    """The contract's topics under a prefix of their own (a module may override it)."""
    made = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, made)
    return made
