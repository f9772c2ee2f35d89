"""Stored names of aggregates and their events: explicit, so that a class can move between modules.

The event store records each event with a type name ("topic") and each aggregate's creation with
its aggregate's name. By default the `eventsourcing` library uses the class path
(`module:Qualname`), so moving a module would orphan what is stored. Each aggregate instead
declares the name it is stored under, once, with `@stored_as(...)`; its event classes are stored
as that name, a dot and their own name. The names are the class paths the events were first
stored under, so nothing stored changes, and the hash chain (which covers the name) still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from eventsourcing.utils import get_topic, register_topic

A = TypeVar("A", bound=type)

# Every name declared, with its class: one class per name, one name per class.
DECLARED: dict[str, type] = {}


def stored_as(name: str) -> Callable[[A], A]:
    """Store the decorated aggregate as `name` and each event class in its body as
    `name.EventName`, wherever the class is defined (the library's topic registration)."""

    def declare(aggregate: A) -> A:
        _declare(name, aggregate)
        for attribute, member in vars(aggregate).items():
            nested = f"{aggregate.__qualname__}.{attribute}"
            if isinstance(member, type) and member.__qualname__ == nested:
                _declare(f"{name}.{attribute}", member)
        return aggregate

    return declare


def _declare(name: str, cls: type) -> None:
    # `TOPIC` is what the library's get_topic answers for a class (it writes stored events and
    # an aggregate's `originator_topic`); register_topic is what its resolve_topic reads back.
    # The library would raise on a name registered for another class; a class under another
    # name is refused here.
    if "TOPIC" in vars(cls) and vars(cls)["TOPIC"] != name:
        raise ValueError(f"{cls.__qualname__} is already stored as {vars(cls)['TOPIC']!r}")
    register_topic(name, cls)
    type.__setattr__(cls, "TOPIC", name)
    if get_topic(cls) != name:  # the library looked the class up before it was named
        raise ValueError(f"{cls.__qualname__} was stored as {get_topic(cls)!r} before {name!r}")
    DECLARED[name] = cls
