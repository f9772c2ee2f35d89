"""R8 and P2: a lookup's fast path counts against the window of the instant it runs in, and
against the customer's store id of that moment: once an erasure unlinks it, a later lookup of
the same person counts on new streams, never on the erased one's."""

from __future__ import annotations

from application.commands import LookUpCard
from application.holds import Holds
from infra.bootstrap import Service
from tests.conftest import FixedClock


def guards_of_guessing(holds: Holds, customer: str | None, source: str) -> tuple[object, ...]:
    guard = holds.cards.guessing(customer, source, "lookup", holds.cards.now())
    return guard.windows[0], guard.windows[-1], guard.budget


def test_r8_lookup_streams_follow_the_window_and_the_subject(
    memory_service: Service, clock: FixedClock
) -> None:
    holds = Holds(memory_service.app)

    def plan(customer: str | None, source: str = "key-1") -> tuple[object, ...]:
        return holds.plan_lookup(LookUpCard(code="NO-SUCH-CODE", market="FR", source=source,
                                            customer_id=customer)).guards

    clock.set("2026-01-12T10:59:59Z")
    first = plan("alice")
    assert first == plan("alice") == guards_of_guessing(holds, "alice", "key-1")
    # Another customer, another source, no customer: their own windows, never alice's.
    assert plan("bob") == guards_of_guessing(holds, "bob", "key-1") != first
    assert plan("alice", "key-2") == guards_of_guessing(holds, "alice", "key-2") != first
    assert plan(None) == guards_of_guessing(holds, None, "key-1") != first
    # One second later the next window starts: new streams, counted from zero.
    clock.advance(seconds=1)
    turned = plan("alice")
    assert turned == guards_of_guessing(holds, "alice", "key-1")
    assert set(turned).isdisjoint(first)
    # The erasure deletes the link to alice's store id: her next lookups count elsewhere.
    store_id = memory_service.vault.resolve_store_id("alice")
    assert store_id is not None
    memory_service.vault.forget_store_ids([store_id])
    after = plan("alice")
    assert after == guards_of_guessing(holds, "alice", "key-1")
    assert after[0] != turned[0]  # her window; the source's window and budget stay
    assert after[1:] == turned[1:]
