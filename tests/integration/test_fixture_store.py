"""A store written by the pre-refactor code (tests/fixtures) reads back identically today."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from tests.fixtures.make_old_store import EXPECTED, STORE, reading, service_for


def test_old_store_reads_back_identically(tmp_path: Path) -> None:
    """Same aggregate states (show, history), same published envelopes, same audit hashes."""
    copy = tmp_path / "old_store.sqlite3"
    shutil.copyfile(STORE, copy)  # the library may write to a store it opens: never the original
    expected = orjson.loads(EXPECTED.read_bytes())
    service = service_for(copy)
    try:
        actual = reading(service)
    finally:
        service.close()
    assert len(expected["envelopes"]) == 45  # the fixture is what we think it is
    assert actual["states"] == expected["states"]
    assert actual["envelopes"] == expected["envelopes"]
    assert actual["audit_chains"] == expected["audit_chains"]
    topics = {e["topic"] for e in expected["envelopes"]}
    assert len(topics) == 14  # every event type of the domain, and the stored checkout reply
