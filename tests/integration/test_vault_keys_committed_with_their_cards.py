"""R7: a card and the vault key of its sealed code are one transaction on every store: a batch
whose events are refused at commit leaves no key behind (the store never holds a key without
its card, whatever ends the batch between the two writes)."""

from __future__ import annotations

from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from application.cards import delivery_key_subject
from application.commands import PurchaseCard
from infra.bootstrap import Service

CODE_KEY_PREFIX = delivery_key_subject(UUID(int=0)).removesuffix(str(UUID(int=0)))


def code_keys(service: Service) -> list[str]:
    rows = service.db.execute(
        "SELECT subject_id FROM subject_keys WHERE subject_id LIKE ?", (CODE_KEY_PREFIX + "%",))
    return [str(row[0]) for row in rows]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_r7_a_batch_refused_at_commit_leaves_no_code_key_without_its_card(
    service: Service,
) -> None:
    app = service.app
    with app.batch(Tracking("order.checkout#0", 10)):
        pass  # another consumer applied this position first
    with pytest.raises(IntegrityError), app.batch(Tracking("order.checkout#0", 10)) as uow:
        for i in range(3):
            app.purchase(PurchaseCard(
                market="FR", amount=5000, payment_method="card", buyer_id="c",
                order_id=f"refused-{i}", buyer_email="buyer@example.org",
            ), within=uow)
    assert code_keys(service) == []
    # The same purchases committed: each card with its key.
    with app.batch(Tracking("order.checkout#0", 11)) as uow:
        cards = [app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id="c", order_id=f"refused-{i}",
            buyer_email="buyer@example.org",
        ), within=uow).card_id for i in range(3)]
    assert sorted(code_keys(service)) == sorted(delivery_key_subject(UUID(str(c))) for c in cards)
