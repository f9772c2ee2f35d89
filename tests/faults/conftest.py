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


@pytest.fixture(scope="module")
def private_kafka_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrivateKafkaCluster]:
    """Three started KRaft nodes (RF 3, min.insync.replicas 2), shared by a module's tests
    (each on topics of its own; a test that kills a node restarts it); all killed at the end.
    Starting a cluster costs about a minute: once per module, not per test."""
    with PrivateKafkaCluster(tmp_path_factory.mktemp("kafka-cluster")) as cluster:
        yield cluster
