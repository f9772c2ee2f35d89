"""The stored-JSON envelope path equals the domain-event path, and old event versions upcast."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4, uuid5

import orjson
import pytest
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from hypothesis import given
from hypothesis import strategies as st

from domain.base import Aggregate
from infra import envelope as envelope_module
from infra.bootstrap import Service
from infra.envelope import event_id, stored_envelope, to_envelope
from tests.unit.test_schemas import lifecycle


class Ledger(Aggregate):
    """A stand-in aggregate whose one event went from version 1 to 2 (a field was added)."""

    class Noted(Aggregate.Event):
        class_version: ClassVar[int] = 2
        at: datetime
        amount: int
        note: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["note"] = "(none before v2)"


def test_stored_envelope_equals_the_domain_event_envelope(
    memory_service: Service, clock: Any
) -> None:
    lifecycle(memory_service, clock)
    app = memory_service.app
    notifications = app.recorder.select_notifications(1, 10**6)
    kinds = set()
    for n in notifications:
        fast = stored_envelope(app.mapper, n, app.pseudonyms)
        slow = to_envelope(app.mapper.to_domain_event(n), n.id, app.pseudonyms)
        assert orjson.dumps(fast) == orjson.dumps(slow), n.topic
        if fast is not None:
            kinds.add(fast["event_type"])
    assert {"GiftCardPurchased", "GiftCardRedeemed", "GiftCardRefunded",
            "GiftCardExpired", "CheckoutUnknownCodeTried", "SubjectErased"} <= kinds


@pytest.fixture
def published_ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(envelope_module.PUBLISHED, get_topic(Ledger), "Ledger")
    monkeypatch.setattr(envelope_module, "_PUBLISHED_AS", {})  # a fresh per-class cache
    yield


@pytest.mark.usefixtures("published_ledger")
def test_a_version_1_event_is_upcast_and_published_at_its_class_version_plus_one(
    memory_service: Service,
) -> None:
    mapper = memory_service.app.mapper
    at = datetime(2026, 1, 12, 9, 30, tzinfo=UTC)
    v1_state = {"timestamp": "2026-01-12T09:30:00.000001+00:00", "at": "2026-01-12T09:30:00Z",
                "amount": 700}  # stored before `note` existed: no class_version key
    stored = Notification(id=41, originator_id=uuid4(), originator_version=3,
                          topic=get_topic(Ledger.Noted), state=orjson.dumps(v1_state))

    event = mapper.to_domain_event(stored)
    assert isinstance(event, Ledger.Noted)
    assert (event.note, event.at, event.amount) == ("(none before v2)", at, 700)

    pseudonyms = memory_service.pseudonyms
    published = stored_envelope(mapper, stored, pseudonyms)
    assert published == to_envelope(event, 41, pseudonyms)
    assert published is not None
    # Stored class version 2; published 3: published version 1 was the stream with clear ids,
    # every later one carries pseudonyms (P5, infra.envelope.published_version).
    assert published["event_type"] == "LedgerNoted" and published["schema_version"] == 3
    assert published["data"] == {"amount": 700, "note": "(none before v2)"}
    # Normalised by the model, not copied from the old record's text.
    assert published["recorded_at"] == "2026-01-12T09:30:00.000001Z"


def test_a_current_version_event_round_trips_with_its_version_recorded(
    memory_service: Service,
) -> None:
    mapper = memory_service.app.mapper
    event = Ledger.Noted(originator_id=uuid4(), originator_version=1,
                         at=datetime(2026, 1, 1, tzinfo=UTC), amount=5, note="n")
    stored = mapper.to_stored_event(event)
    assert orjson.loads(stored.state)["class_version"] == 2
    assert mapper.to_domain_event(stored) == event


@given(st.uuids(), st.integers(min_value=1, max_value=10**12))
def test_event_id_is_the_uuid5_of_stream_and_version(stream: UUID, version: int) -> None:
    assert event_id(stream, version) == str(uuid5(stream, str(version)))
