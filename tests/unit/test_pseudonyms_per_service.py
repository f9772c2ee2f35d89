"""P5: each service publishes under its own stream-pseudonym key, passed in with the
application: a second service built in the same process (another deployment's key) changes
nothing in the envelopes of the first."""

from __future__ import annotations

from typing import Any

from infra.bootstrap import build
from infra.config import load_settings
from infra.limits import ProcessingLimits
from projections.sources import store_page
from tests.conftest import SECRET


def service_with(secret: str, clock: Any) -> Any:
    return build(load_settings({"GIFTCARDS_DATABASE_URL": "memory://",
                                "GIFTCARDS_SECRET_KEY": secret}), clock=clock)


def test_p5_envelopes_carry_the_pseudonyms_of_their_own_service_after_another_is_built(
    clock: Any,
) -> None:
    mine = service_with(SECRET, clock)
    try:
        mine.app.purchase(market="FR", amount=5000, payment_method="card",
                          buyer_id="cust-1", order_id="order-1")
        other = service_with(SECRET[::-1], clock)  # built after: the last one built
        other.close()
        envelopes = [i.envelope for i in store_page(mine.app, 1, 1000) if i.envelope]
        ordered = [e for e in envelopes if e["event_type"] == "GiftCardPurchased"]
        assert ordered and all(e["correlation_id"] == mine.pseudonyms.order("order-1")
                               for e in ordered)
        assert mine.pseudonyms.order("order-1") != other.pseudonyms.order("order-1")
        limits = ProcessingLimits.from_store(mine.app, 10**6)
        assert limits.pseudonyms is mine.pseudonyms
    finally:
        mine.close()
