"""P2 at the checkout's pace: a batch translates all its customers to store ids in a few
queries, not two or three per message, and each card still carries its customer's store id."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from consumers.checkout_processor import CheckoutProcessor
from infra.bootstrap import Service
from tests.integration.test_checkout_consumer import BUYER, completed, ordered
from tests.integration.test_dead_letters import Polled

CUSTOMERS = 30


def counting_store_id_queries(service: Service, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    db = service.vault.db
    for name in ("execute", "executemany"):
        original = getattr(db, name)

        def counted(sql: str, *args: Any, _original: Any = original) -> Any:
            if "store_ids" in sql:
                seen.append(sql)
            return _original(sql, *args)

        monkeypatch.setattr(db, name, counted)
    return seen


def test_p2_a_batch_reads_and_gives_its_customers_store_ids_in_a_few_queries(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor = CheckoutProcessor(service.app, "order.checkout")
    service.vault.store_id("cust-0")  # one customer known before, the others new
    records = [Polled(i, ordered(f"m-{i}", f"o-{i}", buyer={**BUYER, "customer_id": f"cust-{i}"}))
               for i in range(CUSTOMERS)]
    records += [Polled(CUSTOMERS + i, completed(f"p-{i}", f"q-{i}", "UNKNOWN-CODE-0000"))
                for i in range(3)]  # unknown codes count against customer cust-7's store id
    queries = counting_store_id_queries(service, monkeypatch)
    outcome = processor.process(0, records)
    assert len(queries) <= 3, queries  # read, give the new ones, read what was given
    monkeypatch.undo()
    replies = {r["message_id"]: r for _, r in outcome.results}
    for i in range(CUSTOMERS):
        reply = replies[f"m-{i}"]
        assert reply["status"] == "accepted", reply
        card = service.app.repository.get(UUID(reply["card_id"]))
        assert card.buyer_subject == service.vault.resolve_store_id(f"cust-{i}")
        assert card.buyer_subject != f"cust-{i}"  # a new customer's id is not what is stored
    assert {replies[f"p-{i}"]["status"] for i in range(3)} == {"rejected"}
