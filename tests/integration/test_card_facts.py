"""A lookup from the kept card rows answers exactly as the full lookup, or not at all.

The rows are written in the same transaction as the cards' events (PostgreSQL's recorder) and
read many at a time from the API's event loop (`infra.cardfacts`); whatever the full lookup
would write (an unknown code, a locked-out subject, a hold to release) must decline."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

from application.commands import AuthorizeHold, CancelCard, CaptureHold, LookUpCard
from application.holds import Holds
from composition.bootstrap import Service, build, build_card_facts_reader
from domain.errors import DomainError
from domain.giftcard import GiftCard
from infra.cardfacts import CardFactsReader
from infra.config import load_settings
from tests.conftest import SECRET, FixedClock
from tests.unit.rules_helpers import buy

# The rows are PostgreSQL's (the API's production store); SQLite reads every lookup in full.
POSTGRES = pytest.mark.parametrize("backend", ["postgres"])

SOURCE = "key-1"


def full(holds: Holds, code: str, market: str = "FR", customer_id: str | None = None) -> Any:
    return holds.lookup(LookUpCard(
        code=code, market=market, source=SOURCE, customer_id=customer_id,
    ))


def reread(service: Service) -> CardFactsReader:
    """A reader of its own per read: a pool belongs to the event loop that opened it."""
    built = build_card_facts_reader(service)
    assert built is not None
    return built


def lookup_fast(service: Service, holds: Holds, code: str, **where: Any) -> Any:
    reader = reread(service)

    async def once() -> Any:
        try:
            plan = holds.plan_lookup(LookUpCard(
                code=code, market=where.get("market", "FR"), source=SOURCE,
                customer_id=where.get("customer_id"),
            ))
            card, counts = await reader.read(plan.code_index, plan.guards)
            return holds.answer_from_facts(plan, card, counts)
        finally:
            await reader.close()

    return asyncio.run(once())


@POSTGRES
def test_r9_r11_the_row_answers_as_the_card_at_every_step_of_a_hold(
    service: Service, clock: FixedClock
) -> None:
    holds = Holds(service.app, hold_seconds=600)
    # Given a card just bought
    card = buy(service.app)
    code = card.code
    # Then the row answers, and as the full lookup does
    assert lookup_fast(service, holds, code) == full(holds, code)
    assert lookup_fast(service, holds, code).status == "active"
    # When it is held for an order
    holds.authorize(AuthorizeHold(
        code=code, market="FR", order_id="o-1", order_total=3000, customer_id="c-1", source=SOURCE,
    ))
    assert lookup_fast(service, holds, code) == full(holds, code)
    assert lookup_fast(service, holds, code).status == "held"
    # When the hold runs out: the row declines (reading the card releases the hold) ...
    clock.advance(seconds=601)
    assert lookup_fast(service, holds, code) is None
    assert full(holds, code).status == "active"
    # ... and once released (in the same transaction as the release), it answers again
    assert lookup_fast(service, holds, code) == full(holds, code)
    # When held again and captured (R11: the single use)
    holds.authorize(AuthorizeHold(
        code=code, market="FR", order_id="o-2", order_total=3000, customer_id="c-1", source=SOURCE,
    ))
    holds.capture(CaptureHold(order_id="o-2"))
    redeemed = lookup_fast(service, holds, code)
    assert redeemed == full(holds, code)
    assert (redeemed.status, redeemed.balance) == ("redeemed", 0)


@POSTGRES
def test_r9_r19_expired_and_cancelled_cards_answer_as_the_full_lookup(
    service: Service, clock: FixedClock
) -> None:
    holds = Holds(service.app)
    expiring, cancelled = buy(service.app), buy(service.app, order_id="p-cancel")
    service.app.cancel(CancelCard(card_id=None, code=cancelled.code, order_id="p-cancel"))
    answer = lookup_fast(service, holds, cancelled.code)
    assert answer == full(holds, cancelled.code) and answer.status == "cancelled"
    # R9: from the first instant past its validity, with nothing stored in between
    clock.now = service.app.repository.get(expiring.card_id).expires_at
    answer = lookup_fast(service, holds, expiring.code)
    assert answer == full(holds, expiring.code)
    assert (answer.status, answer.balance) == ("expired", 0)


@POSTGRES
def test_a_row_older_than_its_cards_last_event_is_not_used(service: Service) -> None:
    holds = Holds(service.app)
    card = buy(service.app)
    assert lookup_fast(service, holds, card.code) is not None
    # When an event is stored by a path that does not keep the row (the library's own save)
    stored: GiftCard = service.app.repository.get(card.card_id)
    stored.seal_history(now=service.app.now())
    service.app.save(stored)
    # Then the row is stale and the lookup is read in full
    assert lookup_fast(service, holds, card.code) is None
    assert full(holds, card.code).status == "active"


@POSTGRES
def test_r8_unknown_codes_other_markets_and_locked_out_subjects_are_read_in_full(
    service: Service,
) -> None:
    holds = Holds(service.app)
    card = buy(service.app)
    # An unknown code, and a card of another market: the full lookup records the attempt
    assert lookup_fast(service, holds, "ZZZZ-ZZZZ-ZZZZ-ZZZZ") is None
    assert lookup_fast(service, holds, card.code, market="BE") is None
    with pytest.raises(DomainError) as other_market:
        full(holds, card.code, market="BE", customer_id="guesser")
    assert other_market.value.code == "unknown_code"  # answered as an unknown code
    # A subject one short of the limit still gets the row's answer ...
    limit = service.app.markets.guessing.max_unknown_codes
    for n in range(limit - 2):
        with pytest.raises(DomainError):
            full(holds, f"ZZZZ-ZZZZ-ZZZZ-{n:04d}", customer_id="guesser")
    assert lookup_fast(service, holds, card.code, customer_id="guesser") is not None
    # ... and at the limit, even a valid code is refused by the full lookup, not answered
    with pytest.raises(DomainError):
        full(holds, "ZZZZ-ZZZZ-ZZZZ-9999", customer_id="guesser")
    assert lookup_fast(service, holds, card.code, customer_id="guesser") is None
    with pytest.raises(DomainError) as locked:
        full(holds, card.code, customer_id="guesser")
    assert locked.value.code == "too_many_attempts"


@POSTGRES
def test_many_waiting_lookups_share_a_query_and_each_gets_its_own_card(
    service: Service,
) -> None:
    holds = Holds(service.app)
    cards = [buy(service.app) for _ in range(40)]
    plans = [holds.plan_lookup(LookUpCard(code=c.code, market="FR", source=SOURCE)) for c in cards]
    plans.append(holds.plan_lookup(LookUpCard(
        code="ZZZZ-ZZZZ-ZZZZ-ZZZZ", market="FR", source=SOURCE,
    )))
    reader = reread(service)
    queries = 0
    real = reader.pool.connection

    def counting() -> Any:
        nonlocal queries
        queries += 1
        return real()

    reader.pool.connection = counting  # type: ignore[method-assign]

    async def all_at_once() -> list[Any]:
        try:
            return await asyncio.gather(*(reader.read(p.code_index, p.guards) for p in plans))
        finally:
            await reader.close()

    read = asyncio.run(all_at_once())
    assert [facts.card_id for facts, _ in read[:-1]] == [c.card_id for c in cards]
    assert read[-1] == (None, (0, 0, 0))
    assert queries <= 2  # the first alone, the 40 others together


def test_sqlite_keeps_no_rows_and_every_lookup_is_read_in_full(
    tmp_path: Any, clock: FixedClock
) -> None:
    env = {"GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'g.sqlite3'}",
           "GIFTCARDS_SECRET_KEY": SECRET, "GIFTCARDS_DATA_DIR": str(tmp_path / "var")}
    service = build(load_settings(env), clock=clock)
    try:
        assert build_card_facts_reader(service) is None
        assert not service.app.keeps_card_facts
    finally:
        service.close()


@POSTGRES
def test_a_database_that_does_not_answer_sends_lookups_the_full_way(service: Service) -> None:
    """The reader never raises nor hangs: no answer from it means the full lookup decides
    (which retries, or answers 503 over HTTP)."""
    holds = Holds(service.app)
    recorder: Any = service.app.recorder
    reader = CardFactsReader("postgresql://giftcards:x@127.0.0.1:1/none", recorder)
    plan = holds.plan_lookup(LookUpCard(code=buy(service.app).code, market="FR", source=SOURCE))

    async def once() -> Any:
        try:
            return await asyncio.gather(*(reader.read(plan.code_index, plan.guards)
                                          for _ in range(3)))
        finally:
            await reader.close()

    started = time.monotonic()
    assert asyncio.run(once()) == [(None, (0, 0, 0))] * 3
    assert time.monotonic() - started < 10


@POSTGRES
def test_the_api_stops_while_its_lookup_pool_is_still_connecting(
    service: Service, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection still being made when the API stops does not keep it from stopping."""
    from starlette.testclient import TestClient

    from application.apikeys import ApiKeys
    from entrypoints.http import context
    from entrypoints.http.app import create_app

    # A database that takes connections and never answers them: the pool's first connection is
    # still being made after the lookup has gone the full way
    silent = socket.create_server(("127.0.0.1", 0))
    url = f"postgresql://giftcards:x@127.0.0.1:{silent.getsockname()[1]}/none"
    recorder: Any = service.app.recorder
    monkeypatch.setattr(context, "build_card_facts_reader",
                        lambda _: CardFactsReader(url, recorder))
    code = buy(service.app).code
    key = ApiKeys(service.app).create(name="shop", scopes=["checkout"])["key"]
    answered: list[int] = []

    def serve_one_lookup() -> None:
        with TestClient(create_app(service)) as client:
            answered.append(client.post(
                "/v1/cards/lookup", headers={"Authorization": f"Bearer {key}"},
                json={"code": code, "market": "FR"}).status_code)

    api = threading.Thread(target=serve_one_lookup, daemon=True)
    try:
        api.start()
        api.join(timeout=30)
        assert answered == [200]
        assert not api.is_alive(), "the API did not stop"
    finally:
        silent.close()


@POSTGRES
def test_r8_p2_a_found_card_looked_up_for_a_customer_never_seen_gives_them_no_store_id(
    service: Service,
) -> None:
    holds = Holds(service.app)
    code = buy(service.app).code
    # A read that finds the card writes nothing: no store id for a customer only named
    answer = lookup_fast(service, holds, code, customer_id="named-only")
    assert answer is not None and answer.status == "active"
    assert service.vault.resolve_store_id("named-only") is None
    # A miss is counted against them (R8): that write gives them their store id
    with pytest.raises(DomainError):
        full(holds, "ZZZZ-ZZZZ-ZZZZ-ZZZZ", customer_id="named-only")
    known = service.vault.resolve_store_id("named-only")
    assert known is not None
    # and the next lookup's plan reads their window, where that miss is
    reader = reread(service)
    plan = holds.plan_lookup(LookUpCard(code=code, market="FR", source=SOURCE,
                                        customer_id="named-only"))

    async def once() -> Any:
        try:
            return await reader.read(plan.code_index, plan.guards)
        finally:
            await reader.close()

    _, (subject_misses, source_misses, _) = asyncio.run(once())
    assert subject_misses == 1 and source_misses == 0


@POSTGRES
def test_a_lookup_or_authorization_naming_a_customer_reads_their_store_id_off_the_event_loop(
    service: Service, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API's event loop serves every other request while one waits for the database."""
    from starlette.testclient import TestClient

    from application.apikeys import ApiKeys
    from entrypoints.http.app import create_app

    code = buy(service.app).code
    key = ApiKeys(service.app).create(name="shop", scopes=["checkout"])["key"]
    auth = {"Authorization": f"Bearer {key}"}
    on_loop: list[bool] = []
    real = service.app.vault.resolve_store_id

    def noting(customer_id: str) -> str | None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(customer_id)

    monkeypatch.setattr(service.app.vault, "resolve_store_id", noting)
    with TestClient(create_app(service)) as client:
        looked = client.post("/v1/cards/lookup", headers=auth,
                             json={"code": code, "market": "FR", "customer_id": "c-9"})
        assert looked.status_code == 200, looked.text
        assert looked.json()["status"] == "active"
        assert on_loop and not any(on_loop)
        on_loop.clear()
        held = client.post("/v1/checkouts/o-9/authorize", headers=auth,
                           json={"code": code, "market": "FR", "order_total": 1000,
                                 "customer_id": "c-9"})
        assert held.status_code == 200, held.text
        assert on_loop and not any(on_loop)
