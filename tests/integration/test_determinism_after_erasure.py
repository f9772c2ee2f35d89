"""P2 with store ids: customers first seen since store ids have live views equal to a rebuild
from the store and from Kafka; after their erasure (the link from their customer id to their
store id deleted), the live views still equal a rebuild from the store, and every card's chain
and replay verify (`audit verify --all`): the pseudonym is computed from the store id kept in
the events, never through the index."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from application.commands import PurchaseCard, RedeemCard
from application.privacy import Privacy
from dev.services import unique_topic_prefix
from domain.errors import DomainError
from infra.bootstrap import Service
from infra.kafka.topics import Topics
from projections import schema
from projections.sources import sync_kafka, sync_store
from projections.verify import card_ids, verify_card
from tests.integration.test_determinism import publish, views_db
from tests.operator_register import enrol

CUSTOMERS = [f"cust-det-{i}" for i in range(6)]
ERASED = CUSTOMERS[:3]


def history(service: Service, clock: Any) -> None:
    """Each customer buys two cards (with personal data), pays with one, tries a wrong code."""
    app = service.app
    for n, customer in enumerate(CUSTOMERS):
        codes = []
        for k in range(2):
            clock.advance(minutes=3)
            codes.append(app.purchase(PurchaseCard(
                market="FR", amount=5000, payment_method="card", buyer_id=customer,
                buyer_email=f"{customer}@example.org", buyer_name=f"Name {n}",
                order_id=f"o-det-{n}-{k}")).code)
        clock.advance(minutes=3)
        app.redeem(RedeemCard(code=codes[0], market="FR", order_id=f"pay-det-{n}",
                              order_total=2000, customer_id=customer, source="test"))
        with contextlib.suppress(DomainError):  # an unknown code, recorded
            app.redeem(RedeemCard(code="NOPE-NOPE-NOPE", market="FR",
                                  order_id=f"guess-det-{n}", order_total=100,
                                  customer_id=customer, source="test"))


def test_p2_views_and_audit_verify_agree_after_erasing_customers_with_store_ids(
    service: Service, clock: Any, tmp_path: Path, kafka_bootstrap: str,
) -> None:
    live = views_db(service, tmp_path, "live.db")
    history(service, clock)
    sync_store(service.app, live)
    # Before the erasure: the live views, a rebuild from the store and one from Kafka agree.
    topics = Topics(unique_topic_prefix())
    sent = publish(service, kafka_bootstrap, topics)
    from_kafka = views_db(service, tmp_path, "kafka.db")
    assert sync_kafka(kafka_bootstrap, topics.events, from_kafka) == sent
    before = views_db(service, tmp_path, "before.db")
    sync_store(service.app, before)
    assert schema.dump(live.db) == schema.dump(from_kafka.db) == schema.dump(before.db)

    privacy = Privacy(service)
    enrol(service, "dpo-1", "dpo")
    for n, customer in enumerate(ERASED):
        privacy.open_request(customer, "erasure", privacy.today(), f"req-det-{n}")
        privacy.erase([customer], f"req-det-{n}", "dpo-1")
        assert service.vault.resolve_store_id(customer) is None
    sync_store(service.app, live)

    # After it: the store's replay still computes every pseudonym from the store id the
    # events keep (the index row is gone), so a rebuild equals the live views. (A rebuild
    # from Kafka keeps the erased pseudonyms: the published SubjectErased names no one.)
    from_store = views_db(service, tmp_path, "store.db")
    sync_store(service.app, from_store)
    expected = schema.dump(from_store.db)
    assert len(expected["view_balance"]) == 2 * len(CUSTOMERS)
    assert schema.dump(live.db) == expected
    assert expected != schema.dump(before.db)  # the erased pseudonyms were rotated out
    ids = list(card_ids(service.app, live.db))  # audit verify --all
    assert len(ids) == 2 * len(CUSTOMERS)
    for card_id in ids:
        events, problems = verify_card(service.app, live.db, card_id)
        assert events and problems == [], (card_id, problems)
