"""A store written by the pre-refactor code (tests/fixtures) reads back identically today."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from domain.chain import CHAIN_FIELDS
from infra.envelope import event_id
from infra.pseudonyms import StreamPseudonyms
from projections.audit import chain_hash
from tests.fixtures.make_old_store import (
    EXPECTED,
    STORE,
    Clock,
    reading,
    service_for,
    write_histories,
)


def as_v2(v1: dict[str, Any] | None, p: StreamPseudonyms) -> dict[str, Any] | None:
    """The old code's (v1) envelope with the pseudonyms applied by hand: what the
    envelope must publish now, with nothing else changed (P5)."""
    if v1 is None:
        return None
    e = copy.deepcopy(v1)
    e["schema_version"] += 1
    if e["card_id"] is None:  # a stream named after a customer: a keyed stream id
        stream = p.stream(UUID(e["stream_id"]))
        e["stream_id"], e["event_id"] = str(stream), event_id(stream, e["card_version"])
    if not e["event_type"].startswith("Subject"):
        e["correlation_id"] = p.order(e["correlation_id"])
    data = e["data"]
    for name in ("buyer_subject", "customer_id", "subject_id"):
        if data.get(name) is not None:
            data[name] = p.subject(data[name])
    if data.get("order_id") is not None:
        data["order_id"] = p.order(data["order_id"])
    if "recipient_subject" in data.get("pii", {}):
        data["pii"]["recipient_subject"] = p.subject(data["pii"]["recipient_subject"])
    return e


def test_old_store_reads_back_identically(tmp_path: Path) -> None:
    """Same aggregate states (show, history), same published envelopes (v2: the same with the
    ids pseudonymised), and audit hashes of those."""
    copy = tmp_path / "old_store.sqlite3"
    shutil.copyfile(STORE, copy)  # the library may write to a store it opens: never the original
    expected = orjson.loads(EXPECTED.read_bytes())
    service = service_for(copy)
    try:
        actual = reading(service)
        pseudonyms = service.pseudonyms
    finally:
        service.close()
    assert len(expected["envelopes"]) == 45  # the fixture is what we think it is
    # Every attribute the old code's aggregates had reads back the same; later features may
    # only add attributes at their neutral value (holds: held_* None or 0).
    assert actual["states"].keys() == expected["states"].keys()
    for stream, old in expected["states"].items():
        new = actual["states"][stream]
        assert {k: new["state"].get(k) for k in old["state"]} == old["state"], stream
        assert {k: v for k, v in new.items() if k != "state"} == {
            k: v for k, v in old.items() if k != "state"}, stream
        added = {k: v for k, v in new["state"].items() if k not in old["state"]}
        assert all(v in (None, 0, [], {}) for v in added.values()), (stream, added)
    published = [{**e, "envelope": as_v2(e["envelope"], pseudonyms)}
                 for e in expected["envelopes"]]
    assert actual["envelopes"] == published
    chains: dict[str, list[str]] = {}
    for e in published:
        if e["envelope"] is not None and e["envelope"]["card_id"]:
            chain = chains.setdefault(e["envelope"]["card_id"], [])
            chain.append(chain_hash(chain[-1] if chain else None, e["envelope"]))
    assert chains.keys() == expected["audit_chains"].keys()
    assert actual["audit_chains"] == chains
    topics = {e["topic"] for e in expected["envelopes"]}
    assert len(topics) == 14  # every event type of the domain, and the stored checkout reply


def test_current_code_stores_the_same_fields_as_the_old_code(tmp_path: Path) -> None:
    """The same histories written today: every event type stores the same field names, with
    the same class version, as the fixture's (key order aside: the mapper reads by name)."""

    def fields_by_topic(path: Path) -> dict[str, set[tuple[str, ...]]]:
        service = service_for(path)
        try:
            found: dict[str, set[tuple[str, ...]]] = {}
            for n in service.app.recorder.select_notifications(1, 10**6):
                # Card events gained their chain hashes, optional: old ones read.
                fields = set(orjson.loads(n.state)) - CHAIN_FIELDS
                found.setdefault(n.topic, set()).add(tuple(sorted(fields)))
            return found
        finally:
            service.close()

    copy = tmp_path / "old" / "old_store.sqlite3"
    copy.parent.mkdir()
    shutil.copyfile(STORE, copy)
    fresh = tmp_path / "new" / "store.sqlite3"
    fresh.parent.mkdir()
    clock = Clock()
    service = service_for(fresh, clock)
    try:
        write_histories(service, clock, source="fixture")
    finally:
        service.close()
    old, new = fields_by_topic(copy), fields_by_topic(fresh)
    assert len(old) == 14
    # Every event type the old code wrote is written with the same fields; today's code may
    # also write event types of later features (the sealed-code outbox; the register of
    # operators and their keys, which an erasure now needs; the per-source guessing budget),
    # never fewer.
    assert {topic: new.get(topic) for topic in old} == old
    later = {"domain.delivery:CodeDelivery.CodeSealed", "domain.apikeys:ApiKey.Created",
             "domain.operators:OperatorRegister.Founded",
             "domain.operators:OperatorRegister.Registered",
             "domain.streams:GuessingBudget.Opened", "domain.streams:GuessingBudget.MissCounted"}
    assert set(new) - set(old) <= later, set(new) - set(old)


def test_p5_audit_copy_check_reads_records_published_before_the_pseudonyms(
    tmp_path: Path,
) -> None:
    """`audit verify --all` compares the store with `giftcard.events`: v1 records (ids in clear,
    published before the upgrade) still match, and an altered one is still reported."""
    from infra.kafka.copy import compare

    copied = tmp_path / "old_store.sqlite3"
    shutil.copyfile(STORE, copied)
    expected = orjson.loads(EXPECTED.read_bytes())
    old_records = {(e["envelope"]["card_id"], e["envelope"]["card_version"]): e["envelope"]
                   for e in expected["envelopes"] if e["envelope"] and e["envelope"]["card_id"]}
    assert {e["schema_version"] for e in old_records.values()} == {1}
    service = service_for(copied)
    try:
        app = service.app
        assert compare(app.recorder, app.mapper, old_records, app.pseudonyms) == []
        key, record = next((k, e) for k, e in old_records.items() if "order_id" in e["data"])
        altered = {**old_records, key: {**record, "data": {**record["data"], "order_id": "x"}}}
        (problem,) = compare(app.recorder, app.mapper, altered, app.pseudonyms)
        assert problem["problem"].endswith("data.order_id")
    finally:
        service.close()
