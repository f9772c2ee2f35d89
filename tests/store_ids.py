"""What the store and the stream carry for a customer: their store id (the vault's index), and
the pseudonym computed from it (P2, P5)."""

from __future__ import annotations

from typing import Any

from domain.ids import RECIPIENT_PREFIX, STORE_ID_PREFIX


def store_id(service: Any, customer_id: str) -> str:
    """The customer's store id, given now if they are not known yet (as their first command
    or a right recorded for them would); a recipient's pseudonym or a store id is itself."""
    if customer_id.startswith((RECIPIENT_PREFIX, STORE_ID_PREFIX)):
        return customer_id
    return str(service.vault.store_id(customer_id))


def published(service: Any, customer_id: str) -> str:
    """The customer's pseudonym on the stream and in the views."""
    return str(service.pseudonyms.subject(store_id(service, customer_id)))
