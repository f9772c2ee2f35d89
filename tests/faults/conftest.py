"""Fixtures of the fault tests: a private broker and a private PostgreSQL, always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import PrivateKafka, PrivateKafkaCluster, PrivatePostgres


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    """A started single-node broker of this test's own; killed at the end, whatever happened."""
    with PrivateKafka(tmp_path / "kafka") as broker:
        yield broker


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started PostgreSQL cluster of this test's own; stopped and removed at the end."""
    with PrivatePostgres() as cluster:
        yield cluster


@pytest.fixture
def private_kafka_cluster(tmp_path: Path) -> Iterator[PrivateKafkaCluster]:
    """Three started KRaft nodes of this test's own (RF 3, min.insync.replicas 2); all killed
    at the end."""
    with PrivateKafkaCluster(tmp_path / "kafka-cluster") as cluster:
        yield cluster
