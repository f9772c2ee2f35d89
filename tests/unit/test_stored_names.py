"""Aggregates and events are stored under declared names, not class paths: modules can move."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import BaseAggregate, event
from eventsourcing.utils import TopicError, get_topic, resolve_topic

from domain.base import Aggregate
from domain.stored_names import DECLARED, stored_as
from infra.orjsonpydantic import OrjsonTranscoder, PydanticMapper
from tests.fixtures.make_old_store import STORE

PRODUCT = ("domain", "application", "infra", "consumers", "projections", "composition",
           "entrypoints")


def product_aggregates() -> list[type[BaseAggregate]]:
    for package in PRODUCT:
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__,
                                            f"{package}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return [cls for cls in set(subclasses(BaseAggregate))
            if cls.__module__.split(".")[0] in PRODUCT and cls is not Aggregate]


def test_every_aggregate_and_event_class_of_the_product_is_stored_under_a_declared_name() -> None:
    aggregates = product_aggregates()
    assert {cls.__name__ for cls in aggregates} >= {"GiftCard", "CheckoutReply", "HttpReply"}
    for aggregate in aggregates:
        nested = [member for attribute, member in vars(aggregate).items()
                  if isinstance(member, type)
                  and member.__qualname__ == f"{aggregate.__qualname__}.{attribute}"]
        for cls in [aggregate, *nested]:
            assert "TOPIC" in vars(cls), f"{cls.__qualname__}: no @stored_as on its aggregate"
            name = vars(cls)["TOPIC"]
            assert get_topic(cls) == name and resolve_topic(name) is cls and DECLARED[name] is cls


def stored_names(store: sqlite3.Connection) -> set[str]:
    names = set()
    for topic, state in store.execute("SELECT topic, state FROM stored_events"):
        names.add(topic)
        if "originator_topic" in (fields := orjson.loads(state)):
            names.add(fields["originator_topic"])
    return names


def test_the_declared_names_are_the_names_already_in_the_old_store(tmp_path: Path) -> None:
    """Nothing stored changes: every event type and aggregate the old store names resolves
    to the class declared under that very name (and is written under it again)."""
    product_aggregates()
    copy = tmp_path / "old_store.sqlite3"
    shutil.copyfile(STORE, copy)  # opening a store may write beside it: never the original
    store = sqlite3.connect(copy)
    try:
        names = stored_names(store)
    finally:
        store.close()
    assert len(names) >= 14 and "domain.giftcard:GiftCard.Purchased" in names
    for name in names:
        assert name in DECLARED, name
        assert get_topic(resolve_topic(name)) == name


@stored_as("somewhere.it_used_to_live:Voucher")
class Voucher(Aggregate):
    """An aggregate whose declared name is not where it is defined: as after a move."""

    class Issued(Aggregate.Created):
        amount: int

    class Spent(Aggregate.Event):
        at: datetime

    @event(Issued)
    def __init__(self, *, amount: int) -> None:
        self.amount = amount
        self.spent = False

    @event(Spent)
    def spend(self, *, at: datetime) -> None:
        self.spent = True


def test_a_class_defined_elsewhere_is_stored_and_read_back_under_its_declared_name() -> None:
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                           "MAPPER_TOPIC": get_topic(PydanticMapper),
                           "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder)})
    voucher = Voucher(amount=5000)
    voucher.spend(at=datetime(2026, 1, 10))
    app.save(voucher)
    stored = app.recorder.select_events(voucher.id)
    assert [s.topic for s in stored] == ["somewhere.it_used_to_live:Voucher.Issued",
                                         "somewhere.it_used_to_live:Voucher.Spent"]
    first = orjson.loads(stored[0].state)
    assert first["originator_topic"] == "somewhere.it_used_to_live:Voucher"
    assert Voucher.__module__ == __name__  # …not where the names say
    again = app.repository.get(voucher.id)
    assert isinstance(again, Voucher) and again.amount == 5000 and again.spent


def test_a_name_belongs_to_one_class_and_a_class_to_one_name() -> None:
    class Impostor(Aggregate):
        pass

    with pytest.raises(TopicError):
        stored_as("domain.giftcard:GiftCard")(Impostor)
    with pytest.raises(ValueError, match="already stored as"):
        stored_as("somewhere.else:Voucher")(Voucher)
