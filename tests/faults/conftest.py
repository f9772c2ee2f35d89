"""Fixtures of the fault tests: a private broker and a private PostgreSQL, always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import PrivateKafka, PrivatePostgres


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
