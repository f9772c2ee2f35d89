"""CloudEvents binary-mode headers: the cloudevents SDK reads every record back as its envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as ce_kafka_v1
from jsonschema import Draft202012Validator

from infra.bootstrap import Service
from infra.config import ConfigError, load_settings
from infra.kafka.batches import record_of
from infra.kafka.cloudevents import (
    DEFAULT,
    REQUIRED,
    CloudEvents,
    event_headers_schema,
    event_type_name,
    output_headers_schema,
)
from infra.schemas import BASE_ID, file_name
from tests.unit.test_schemas import lifecycle, published

ALL_EVENT_HEADERS = {*REQUIRED, "ce_subject", "ce_time", "ce_dataschema", "event_type",
                     "schema_version"}


@pytest.fixture
def envelopes(memory_service: Service, clock: Any) -> list[dict[str, Any]]:
    """Every published event type, from a lifecycle on the in-memory store."""
    lifecycle(memory_service, clock)
    return published(memory_service)


def read_back(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
    """The record as the SDK's (strict, validating) Kafka binding reads it."""
    message = ce_kafka.KafkaMessage(headers=dict(headers), key=key, value=value)
    return ce_kafka.from_binary(message, JSONFormat())


def test_every_lifecycle_record_reads_back_as_its_envelope(envelopes: list[dict[str, Any]]) -> None:
    types = set()
    for envelope in envelopes:
        key, value, headers = record_of(envelope)
        assert {name for name, _ in headers} == ALL_EVENT_HEADERS
        assert len(headers) == len(ALL_EVENT_HEADERS), "a header given twice"
        event = read_back(key, value, headers)
        assert event.get_specversion() == "1.0"
        assert event.get_id() == envelope["event_id"]
        assert event.get_type() == event_type_name(
            DEFAULT.type_prefix, envelope["event_type"], envelope["schema_version"]
        )
        market = envelope["market"]
        assert event.get_source() == (
            f"https://giftcards.example.com/markets/{market}" if market
            else "https://giftcards.example.com"
        )
        assert event.get_subject() == (envelope["card_id"] or envelope["stream_id"])
        assert event.get_time().isoformat().replace("+00:00", "Z") == envelope["occurred_at"]
        assert event.get_dataschema() == (
            BASE_ID + file_name(envelope["event_type"], envelope["schema_version"])
        )
        assert event.get_datacontenttype() == "application/json"
        assert event.get_data() == envelope  # the value is the envelope, unchanged
        # The SDK's older API (cloudevents.v1.kafka) reads the same attributes.
        legacy = ce_kafka_v1.from_binary(ce_kafka_v1.KafkaMessage(dict(headers), key, value))
        assert (legacy["id"], legacy["type"], legacy["source"], legacy["subject"]) == (
            event.get_id(), event.get_type(), event.get_source(), event.get_subject()
        )
        assert legacy.get_data() == envelope
        types.add(envelope["event_type"])
    assert len(types) >= 11  # every event type of the lifecycle


def test_types_are_reverse_dns_past_tense_and_versioned() -> None:
    prefix = "com.example.giftcard"
    assert event_type_name(prefix, "GiftCardRedeemed", 1) == "com.example.giftcard.redeemed.v1"
    assert event_type_name(prefix, "GiftCardRedemptionRefused", 3) == (
        "com.example.giftcard.redemption_refused.v3"
    )
    assert event_type_name(prefix, "CheckoutUnknownCodeTried", 1) == (
        "com.example.giftcard.checkout.unknown_code_tried.v1"
    )
    assert event_type_name("org.shop.cards", "SubjectErased", 2) == (
        "org.shop.cards.subject.erased.v2"
    )


def test_headers_of_one_event_type_are_built_once(envelopes: list[dict[str, Any]]) -> None:
    """The relay's hot path: per record only id, source, subject and time are looked at."""
    first, second = [e for e in envelopes if e["event_type"] == "GiftCardPurchased"][:2]
    one, other = record_of(first)[2], record_of(second)[2]
    per_record = {"ce_id", "ce_subject", "ce_time"}
    shared = [i for i, (name, _) in enumerate(one) if name not in per_record]
    assert all(one[i][1] is other[i][1] for i in shared)  # the same bytes objects, not equal ones
    assert dict(one)["ce_id"] != dict(other)["ce_id"]


def test_headers_validate_against_the_schemas_the_asyncapi_document_declares(
    envelopes: list[dict[str, Any]],
) -> None:
    for envelope in envelopes:
        _, _, headers = record_of(envelope)
        schema = event_headers_schema(DEFAULT, envelope["event_type"], envelope["schema_version"])
        decoded = {name: value.decode() for name, value in headers}
        Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
            decoded
        )


def result(status: str, message_id: str = "m-1") -> dict[str, Any]:
    return {"message_id": message_id, "type": "GiftCardOrdered", "order_id": "o-1",
            "status": status, "reason": None if status == "accepted" else "expired",
            "card_id": None}


@pytest.mark.parametrize("status", ["accepted", "rejected"])
def test_results_carry_the_message_id_as_event_id(status: str) -> None:
    reply = result(status)
    headers = DEFAULT.result_headers(reply, b"o-1")
    event = read_back(b"o-1", orjson.dumps(reply), headers)
    assert event.get_id() == "m-1"
    assert event.get_type() == f"com.example.giftcard.checkout.{status}.v1"
    assert event.get_source() == "https://giftcards.example.com/checkout/results"
    assert event.get_subject() == "o-1"
    assert event.get_dataschema() == BASE_ID + "checkout-result.json"
    assert event.get_data() == reply
    schema = output_headers_schema(DEFAULT, dead_letter=False)
    Draft202012Validator(schema).validate({n: v.decode() for n, v in headers})


def test_a_dead_letter_without_a_key_has_no_subject_and_is_named_by_its_source_record() -> None:
    letter = {"reason": "not_json", "detail": "", "message_id": None,
              "source": {"topic": "order.checkout", "partition": 3, "offset": 41},
              "original_size": 3, "original_truncated": False, "original_base64": None}
    headers = DEFAULT.dead_letter_headers(letter, None)
    event = read_back(None, orjson.dumps(letter), headers)
    assert event.get_id() == "order.checkout/3/41"
    assert event.get_type() == "com.example.giftcard.checkout.dead_lettered.v1"
    assert event.get_subject() is None
    assert event.get_data() == letter
    schema = output_headers_schema(DEFAULT, dead_letter=True)
    Draft202012Validator(schema).validate({n: v.decode() for n, v in headers})


def test_type_prefix_and_source_come_from_the_settings(tmp_path: Path) -> None:
    settings = load_settings({
        "GIFTCARDS_DATA_DIR": str(tmp_path), "GIFTCARDS_SECRET_KEY": "k" * 40,
        "GIFTCARDS_CLOUDEVENTS_TYPE_PREFIX": "com.shop.cards",
        "GIFTCARDS_CLOUDEVENTS_SOURCE": "urn:shop:giftcards/",
    })
    mine = CloudEvents.of(settings)
    assert mine == CloudEvents("com.shop.cards", "urn:shop:giftcards")
    headers = dict(mine.result_headers(result("accepted"), None))
    assert headers["ce_type"] == b"com.shop.cards.checkout.accepted.v1"
    assert headers["ce_source"] == b"urn:shop:giftcards/checkout/results"


@pytest.mark.parametrize(("name", "value"), [
    ("GIFTCARDS_CLOUDEVENTS_TYPE_PREFIX", "giftcard"),
    ("GIFTCARDS_CLOUDEVENTS_TYPE_PREFIX", "Com.Example"),
    ("GIFTCARDS_CLOUDEVENTS_SOURCE", "/relative/path"),
    ("GIFTCARDS_CLOUDEVENTS_SOURCE", "https://giftcards.example.com/with space"),
])
def test_bad_cloudevents_settings_are_refused_by_name(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({"GIFTCARDS_DATA_DIR": str(tmp_path), "GIFTCARDS_SECRET_KEY": "k" * 40,
                       name: value})
