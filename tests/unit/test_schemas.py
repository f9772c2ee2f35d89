"""The committed JSON Schemas: never drift from the models, and accept exactly what is published."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from application.holds import Holds
from domain.errors import DomainError
from infra import schemas
from infra.bootstrap import Service
from infra.envelope import stored_envelope

EMAIL, NAME, MESSAGE = "alice@example.com", "Alice Durand", "from A with love"


def committed() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in schemas.SCHEMA_DIR.glob("*.json")}


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((schemas.SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def for_envelope(envelope: dict[str, Any]) -> Draft202012Validator:
    return validator(schemas.file_name(envelope["event_type"], envelope["schema_version"]))


def published(service: Service) -> list[dict[str, Any]]:
    """Every envelope of the store, as a consumer reads it off the topic (orjson bytes)."""
    notifications = service.app.recorder.select_notifications(1, 10**6)
    envelopes = (stored_envelope(service.app.mapper, n, service.pseudonyms) for n in notifications)
    return [orjson.loads(orjson.dumps(e)) for e in envelopes if e is not None]


def lifecycle(service: Service, clock: Any) -> list[str]:
    """Purchase with PII, redeem, refused redeem, unknown codes up to a lock-out, refund,
    cancel, expire, GDPR."""
    app = service.app
    buyer = {"market": "FR", "payment_method": "card", "buyer_id": "cust-alice"}
    used = app.purchase(amount=5000, order_id="o-1", buyer_email=EMAIL, buyer_name=NAME,
                        recipient_email="bob@example.org", message=MESSAGE, **buyer)
    kept = app.purchase(amount=2000, order_id="o-2", **buyer)
    left = app.purchase(amount=3000, order_id="o-3", **buyer)
    clock.advance(days=1)
    app.redeem(code=used.code, market="FR", order_id="shop-1", order_total=8000, source="test",
               customer_id="cust-bob")
    for code, order in ((used.code, "shop-2"), ("NOPE-NOPE-NOPE", "shop-3")):
        with pytest.raises(DomainError):
            app.redeem(code=code, market="FR", order_id=order, order_total=100, source="test",
                       customer_id="cust-bob")
    holds = Holds(app)  # a hold, voided (GiftCardHeld, GiftCardHoldReleased)
    holds.authorize(code=left.code, market="FR", order_id="shop-4", order_total=1000,
                    customer_id="cust-bob", source="test")
    holds.void(order_id="shop-4")
    limit = app.markets.guessing.max_unknown_codes
    for n in range(limit + 1):  # R8: the last one is refused unchecked (CheckoutAttemptRefused)
        with pytest.raises(DomainError):
            app.redeem(code=f"GUESS-{n}", market="FR", order_id=f"guess-{n}", order_total=100,
                       source="test", customer_id="cust-mallory")
    app.cancel(kept.card_id)
    clock.advance(days=2)
    refund = app.refund(order_id="shop-1", returned_amount=1000,
                        received_on=app.markets.get("FR").local_date(clock()))
    clock.advance(days=800)
    app.expire()
    service.vault.erase("cust-alice")
    app.record_subject_right("cust-alice", "req-erase-1", "erasure")
    app.record_subject_right("cust-bob", "req-object-1", "objection")
    app.record_subject_right("cust-bob", "req-rectify-1", "rectification", "email")
    app.record_subject_right("cust-bob", "req-restrict-1", "restriction")
    app.record_subject_right("cust-bob", "req-restrict-1", "restriction_lifted")
    return [used.code, kept.code, left.code, refund.new_card.code]


@pytest.fixture
def envelopes(memory_service: Service, clock: Any) -> list[dict[str, Any]]:
    codes = lifecycle(memory_service, clock)
    found = published(memory_service)
    text = orjson.dumps(found).decode()
    # The schemas say what is allowed; this says what must never be there at all.
    assert not [s for s in [*codes, EMAIL, NAME, MESSAGE] if s in text]
    return found


def test_committed_schemas_equal_generated_ones() -> None:
    """Run `python -m infra.schemas` after changing an event model, then commit schemas/."""
    assert committed() == schemas.generate(), "schemas/ is stale: run `python -m infra.schemas`"


def test_every_committed_schema_is_a_valid_draft_2020_12_schema() -> None:
    for name, text in committed().items():
        schema = json.loads(text)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == schemas.DIALECT
        assert schema["$id"].endswith("/" + name)


def test_p2_p4_lifecycle_envelopes_validate_and_cover_every_schema(
    envelopes: list[dict[str, Any]],
) -> None:
    envelope_schema = validator("envelope.json")
    for envelope in envelopes:
        envelope_schema.validate(envelope)
        for_envelope(envelope).validate(envelope)
    seen = {schemas.file_name(e["event_type"], e["schema_version"]) for e in envelopes}
    # A schema no lifecycle event exercises would be an untested contract (versions the code
    # moved on from stay published from schemas/released/: no event is written under them).
    assert seen == set(schemas.from_code()) - schemas.NOT_EVENTS
    purchases = [e for e in envelopes if e["event_type"] == "GiftCardPurchased"]
    assert any(e["data"]["pii"] for e in purchases), "the PII ciphertext path was not exercised"


def tamper(kind: str, envelope: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(envelope)
    if kind == "extra_data_field":
        bad["data"]["code"] = "ABCD-EFGH-IJKL"
    elif kind == "wrong_type_in_data":
        bad["data"]["applied"] = str(bad["data"]["applied"])
    elif kind == "missing_data_field":
        del bad["data"]["forfeited"]
    elif kind == "extra_envelope_field":
        bad["email"] = EMAIL
    elif kind == "wrong_event_type":
        bad["event_type"] = "GiftCardPurchased"
    elif kind == "wrong_lifted_type":
        bad["market"] = None
    elif kind == "bad_uuid":
        bad["card_id"] = "not-a-uuid"
    return bad


@pytest.mark.parametrize(
    "kind",
    [
        "extra_data_field",
        "wrong_type_in_data",
        "missing_data_field",
        "extra_envelope_field",
        "wrong_event_type",
        "wrong_lifted_type",
        "bad_uuid",
    ],
)
def test_tampered_envelope_is_rejected(envelopes: list[dict[str, Any]], kind: str) -> None:
    redeemed = next(e for e in envelopes if e["event_type"] == "GiftCardRedeemed")
    checker = validator(schemas.file_name("GiftCardRedeemed", redeemed["schema_version"]))
    assert checker.is_valid(redeemed)
    assert not checker.is_valid(tamper(kind, redeemed))


@settings(max_examples=50, deadline=None)
@given(key=st.text(min_size=1, max_size=20), value=st.from_type(int) | st.text() | st.none())
def test_no_schema_accepts_an_unknown_data_field(key: str, value: Any) -> None:
    for name, text in committed().items():
        if name in schemas.NOT_EVENTS:
            continue
        data_schema = json.loads(text)["properties"]["data"]
        if key in data_schema["properties"]:
            continue
        sample = {field: None for field in data_schema["properties"]} | {key: value}
        errors = Draft202012Validator(data_schema).iter_errors(sample)
        assert any(e.validator == "additionalProperties" for e in errors), name
