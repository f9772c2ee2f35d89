"""R8 and P2: a lookup's fast path counts against the window of the instant it runs in, and
against the customer's store id of that moment: once an erasure unlinks it, a later lookup of
the same person counts on new streams, never on the erased one's. A lookup, a read, gives no
store id: a customer never seen counts on the source's window until a write gives them one."""

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
    # A customer never seen: no store id given by the lookup, the source's window read twice.
    unknown = plan("alice")
    assert memory_service.vault.resolve_store_id("alice") is None
    assert unknown[0] == unknown[1] == plan(None)[0]
    # Once a write (a miss, a purchase) gives her a store id, the lookup reads her window.
    first = guards_of_guessing(holds, "alice", "key-1")
    assert plan("alice") == first != unknown
    # Another customer, another source, no customer: their own windows, never alice's.
    assert guards_of_guessing(holds, "bob", "key-1") == plan("bob") != first
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
    assert plan("alice")[0] == turned[1]  # unknown again: the source's window, not the erased
    after = guards_of_guessing(holds, "alice", "key-1")  # a new store id
    assert plan("alice") == after
    assert after[0] != turned[0]  # her window; the source's window and budget stay
    assert after[1:] == turned[1:]
