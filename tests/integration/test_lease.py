"""The relay lease on both backends: one holder, renewed by it, taken over only once expired."""

from __future__ import annotations

from composition.bootstrap import Service, set_up_schema
from infra.db import Database
from infra.lease import Lease, current_holder


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_one_holder_renewals_expiry_takeover_and_release(service: Service) -> None:
    clock = Clock()
    other_db = Database(service.db.url)  # a second process's connection
    try:
        a = Lease(service.db, "test-relay", "a", 10, clock)
        b = Lease(other_db, "test-relay", "b", 10, clock)
        assert a.acquire() and not b.acquire()
        clock.now += 9
        assert a.acquire(), "renewed by its holder"
        clock.now += 9
        assert not b.acquire(), "the renewal moved the expiry on"
        holder = current_holder(other_db, "test-relay")
        assert holder is not None and holder.holder == "a"
        assert holder.expires_at == clock.now + 1
        clock.now += 2  # a stopped renewing: expired
        assert b.acquire() and not a.acquire(), "taken over once expired, not handed back"
        b.release()
        assert current_holder(service.db, "test-relay") is None
        assert a.acquire(), "a released lease is free at once"
        assert Lease(other_db, "another-prefix", "b", 10, clock).acquire(), "one per name"
    finally:
        other_db.close()


def test_schema_set_up_twice_is_harmless(service: Service) -> None:
    set_up_schema(service.settings)
    set_up_schema(service.settings)
    assert Lease(service.db, "x", "me", 5).acquire()
