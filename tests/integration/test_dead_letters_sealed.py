"""P2/P5: a dead letter keeps its original only sealed under the day's dead-letter key, which
retention destroys after GIFTCARDS_RETENTION_DEAD_LETTER_DAYS; the published part stays
redacted (field paths, types and sizes)."""

from __future__ import annotations

import base64
import json
from typing import Any

from jsonschema import Draft202012Validator

from application.privacy import Privacy, dead_letter_sealer
from consumers.dead_letters import DEAD_LETTER_SCHEMA, Invalid, dead_letter
from entrypoints.cli.gdpr import run_purge
from infra.bootstrap import Service
from infra.vault import ERASED

RAW = json.dumps({
    "type": "purchase", "message_id": "m-1", "order_id": "o-1",
    "buyer": {"email": "zed.secret@example.org", "name": "Zed Secret"},
    "message": "Call me 0612345678, 17 rue des Probes",
}).encode()


def letter(service: Service) -> dict[str, Any]:
    refused = Invalid("invalid_field", "buyer.phone: extra")
    _key, found = dead_letter(refused, topic="order.checkout", partition=0, offset=3, raw=RAW,
                              seal=dead_letter_sealer(service.vault, service.app.now))
    Draft202012Validator(DEAD_LETTER_SCHEMA).validate(found)
    return found


def opened(service: Service, found: dict[str, Any]) -> str:
    token = found["original_sealed"]
    owner = service.vault.owner_of(token)  # the day's key, while it lives
    clear = service.vault.open(owner, token) if owner is not None else ERASED
    return clear if clear == ERASED else base64.b64decode(clear).decode()


def test_p2_p5_a_dead_letter_keeps_its_original_sealed_and_only_the_redacted_one_readable(
    service: Service,
) -> None:
    found = letter(service)
    published = json.dumps(found)
    redacted = base64.b64decode(found["original_base64"]).decode()
    for secret in ("zed.secret@example.org", "Zed Secret", "0612345678", "rue des Probes"):
        assert secret not in published and secret not in redacted
    assert opened(service, found) == RAW.decode()  # an operator can replay it, for a while


def test_p2_retention_destroys_the_dead_letter_key_after_its_period(
    service: Service, clock: Any
) -> None:
    found = letter(service)
    days = service.settings.retention_dead_letter_days
    clock.advance(days=days - 1)
    assert Privacy(service).purge_dead_letter_keys(days=days)["keys_destroyed"] == 0
    assert opened(service, found) == RAW.decode()
    clock.advance(days=2)
    report = run_purge(service)
    assert report["dead_letter_keys"]["keys_destroyed"] == 1
    assert opened(service, found) == ERASED
