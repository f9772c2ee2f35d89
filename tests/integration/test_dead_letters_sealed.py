"""P2/P5: a dead letter (schema v2) keeps of a refused message its id only as a keyed pseudonym
and its reason; the original only sealed under the day's dead-letter key, which retention
destroys after GIFTCARDS_RETENTION_DEAD_LETTER_DAYS; v1 stays released and held by the gate."""

from __future__ import annotations

import base64
import json
from typing import Any

from consumers.checkout_processor import CheckoutProcessor
from dev import schema_gate
from entrypoints.cli.gdpr import run_purge
from infra import schemas
from infra.bootstrap import Service
from infra.vault_keys import ERASED
from infra.wire.dead_letters import DEAD_LETTER_SCHEMA, Invalid, dead_letter
from infra.wire.messages import parse
from tests.conftest import FixedClock
from tests.integration.test_checkout_consumer import ordered
from tests.unit.test_schemas import validator

PHONE, ADDRESS, NAME = "0612345678", "17 rue des Probes", "Zwolfling"
FREE_TEXT_ID = f"m-dl2 {PHONE}"  # free text where an id belongs


def refused(raw: bytes, service: Service) -> Invalid:
    try:
        parse(raw, service.app.markets)
    except Invalid as invalid:
        return invalid
    raise AssertionError("the input was accepted")


def letter(service: Service, raw: bytes, offset: int = 3) -> tuple[str | None, dict[str, Any]]:
    """The letter the consumer writes for `raw`, checked against the v2 schema."""
    sealing = CheckoutProcessor(service.app, "order.checkout").sealing
    key, found = dead_letter(refused(raw, service), topic="order.checkout", partition=0,
                             offset=offset, raw=raw, sealing=sealing)
    validator(schemas.DEAD_LETTER_V2).validate(found)
    return key, found


def opened(service: Service, found: dict[str, Any]) -> bytes | str:
    token = found["original_sealed"]
    owner = service.vault.owner_of(token)  # the day's key, while it lives
    clear = service.vault.open(owner, token) if owner is not None else ERASED
    return clear if clear == ERASED else base64.b64decode(clear)


def with_free_text() -> bytes:
    """A purchase carrying free text in its id fields and in an unknown key and field."""
    message = json.loads(ordered("m-1", "order-1"))
    message["order_id"] = f"{NAME} {PHONE} {ADDRESS}"
    message[f"{NAME} {PHONE}"] = ADDRESS
    return json.dumps(message).encode()


def test_p5_a_refused_message_leaves_only_its_pseudonymised_id_and_reason(
    service: Service,
) -> None:
    raw = with_free_text()
    key, found = letter(service, raw)
    assert found["message_id"] == service.pseudonyms.message("m-1")
    assert found["reason"] in {"invalid_id", "unexpected_field"}
    assert key is None  # the order id is free text: no key at all
    published = json.dumps(found) + base64.b64decode(found["original_base64"]).decode()
    for secret in (NAME, PHONE, ADDRESS, "m-1", "order-1"):
        assert secret not in published, secret
    assert opened(service, found) == raw  # an operator can replay it, for a while
    # Free text as the message id: the letter names no message at all.
    message = json.loads(ordered("m-1", "order-2"))
    message["message_id"], message["amount"] = FREE_TEXT_ID, "x"
    key, found = letter(service, json.dumps(message).encode(), offset=4)
    assert found["message_id"] is None and PHONE not in json.dumps(found)
    assert key == service.pseudonyms.order("order-2")  # an id: its pseudonym keys the letter


def test_p2_retention_destroys_the_dead_letter_key_after_its_period(
    service: Service, clock: FixedClock
) -> None:
    raw = with_free_text()
    _, found = letter(service, raw)
    days = service.settings.retention_dead_letter_days
    clock.advance(days=days - 1)
    assert run_purge(service)["dead_letter_keys"]["keys_destroyed"] == 0
    assert opened(service, found) == raw
    clock.advance(days=2)
    assert run_purge(service)["dead_letter_keys"]["keys_destroyed"] == 1
    assert opened(service, found) == ERASED  # the sealed original: unreadable by anyone


def test_v1_stays_released_unchanged_v2_is_released_beside_it_and_the_gate_holds_both() -> None:
    released = schemas.read(schemas.RELEASED_DIR)
    published = schemas.read(schemas.SCHEMA_DIR)
    assert published[schemas.DEAD_LETTER] == released[schemas.DEAD_LETTER]
    assert schemas.DEAD_LETTER_V2 in published
    widened = json.loads(published[schemas.DEAD_LETTER])
    widened["properties"]["original_sealed"] = {"type": ["string", "null"]}
    (problem,) = schema_gate.problems(released, {**published,
                                                 schemas.DEAD_LETTER: json.dumps(widened)})
    assert "original_sealed added" in problem
    # v2 is released beside it, and held alike.
    assert published[schemas.DEAD_LETTER_V2] == released[schemas.DEAD_LETTER_V2]
    narrowed = json.loads(published[schemas.DEAD_LETTER_V2])
    del narrowed["properties"]["original_sealed"]
    narrowed["required"].remove("original_sealed")
    (problem,) = schema_gate.problems(released, {**published,
                                                 schemas.DEAD_LETTER_V2: json.dumps(narrowed)})
    assert "original_sealed removed" in problem
    # The consumer's letters without sealing are still v1 letters.
    _, v1 = dead_letter(Invalid("not_json"), topic="t", partition=0, offset=0, raw=b"{")
    assert set(v1) == set(DEAD_LETTER_SCHEMA["properties"])
