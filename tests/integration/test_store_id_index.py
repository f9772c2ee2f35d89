"""P2: the vault's index of store ids. A customer first seen gets a random, opaque store id (the
index keeps only a keyed hash of their customer id); an erasure deletes the row, so the customer
id no longer resolves and a returning customer is a new person; customers the store already
named in clear when the index was made keep their id as store id: they keep buying, are
exported and erased as before (their earlier events, append-only, keep the clear id)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from application.commands import PurchaseCard
from application.privacy_scan import scan
from domain.ids import is_id
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.vault_keys import ERASED
from tests.integration.test_erasure_scan_everywhere import forms
from tests.unit.test_gdpr_privacy import act, export

NEW, LEGACY = "cust-first-seen", "cust-named-in-clear"
EMAIL = "legacy@example.org"


def index_bytes(service: Service) -> bytes:
    rows = service.db.execute("SELECT customer_hash, store_id FROM store_ids")
    return b"\n".join(str(v).encode() for row in rows for v in row)


def test_p2_a_new_customer_gets_an_opaque_store_id_that_names_no_one(service: Service) -> None:
    vault = service.vault
    assert vault.resolve_store_id(NEW) is None

    store_id = vault.store_id(NEW)

    assert is_id(store_id) and store_id != NEW
    assert vault.store_id(NEW) == store_id == vault.resolve_store_id(NEW)
    assert vault.store_id("cust-someone-else") != store_id
    assert not [f for f in forms(NEW) if f in index_bytes(service)]


def test_p2_forgetting_a_store_id_deletes_the_link_and_a_returning_customer_is_new(
    service: Service,
) -> None:
    vault = service.vault
    store_id = vault.store_id(NEW)

    assert vault.forget_store_ids([store_id, "s-nobody"]) == 1

    assert vault.resolve_store_id(NEW) is None
    assert store_id.encode() not in index_bytes(service)
    assert vault.store_id(NEW) not in (store_id, NEW)


@pytest.fixture
def reopened(
    service: Service, env_for: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Service]:
    """The store as the code before the index wrote it (the customer id itself in the events,
    no index), opened again by today's code."""
    with monkeypatch.context() as before_store_ids:
        before_store_ids.setattr(service.vault, "store_id", lambda customer_id: customer_id)
        buy(service, LEGACY, "o-legacy-1")
    service.db.execute("DELETE FROM store_ids")
    service.db.execute("DELETE FROM store_ids_seeded")
    opened = build(load_settings(env_for), clock=service.app.now)
    yield opened
    opened.close()


def test_p2_customers_named_in_clear_before_the_index_keep_their_id(reopened: Service) -> None:
    assert reopened.vault.resolve_store_id(LEGACY) == LEGACY
    assert reopened.vault.store_id(NEW) != NEW


def test_p2_a_customer_named_in_clear_keeps_buying_is_exported_and_erased(
    reopened: Service,
) -> None:
    buy(reopened, LEGACY, "o-legacy-2")  # after the change: the same id, same chain

    cards = [e.originator_id for e in scan(reopened, [LEGACY]).bought]
    assert len(cards) == 2  # both purchases name the customer id itself
    bought = export(reopened, [LEGACY])["cards_bought"]
    assert [c["buyer_email"] for c in bought] == [EMAIL, EMAIL]

    erased = act(reopened, "erase", [LEGACY], "req-legacy")

    assert erased["keys_destroyed"] >= 1 and len(erased["cards_as_buyer"]) == 2
    assert reopened.vault.resolve_store_id(LEGACY) is None
    # Their earlier events keep the clear id (append-only), their sealed data is gone.
    assert {c["buyer_email"] for c in export(reopened, [LEGACY])["cards_bought"]} == {
        ERASED}
    buy(reopened, LEGACY, "o-legacy-3")  # coming back: a new person with a store id
    assert reopened.vault.resolve_store_id(LEGACY) not in (None, LEGACY)


def buy(service: Service, customer_id: str, order_id: str) -> None:
    service.app.purchase(PurchaseCard(market="FR", amount=5000, payment_method="card",
                                      buyer_id=customer_id, buyer_email=EMAIL,
                                      order_id=order_id))
