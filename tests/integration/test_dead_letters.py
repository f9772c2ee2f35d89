"""Malformed checkout inputs end as redacted dead letters while the consumer keeps consuming."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.checkout_processor import CheckoutProcessor
from domain.codes import ALPHABET, LENGTH, generate_code
from infra.bootstrap import Service
from infra.kafka.topics import Topics
from infra.wire.dead_letters import redact_bytes
from tests.conftest import FixedClock
from tests.integration.kafka_helpers import (
    TopicReader,
    produce,
    running_consumer,
)
from tests.integration.test_checkout_consumer import BUYER, PERSONAL, RECIPIENT, ordered
from tests.integration.test_cloudevents_kafka import assert_cloudevents_outputs
from tests.unit.test_schemas import validator

CODE = "HJKMNP-QRSTUV-WXYZ23"

codes = st.text(alphabet=ALPHABET + ALPHABET.lower(), min_size=LENGTH, max_size=LENGTH)
separators = st.sampled_from(["", "-", " "])


@given(code=codes, sep=separators, before=st.binary(max_size=40), after=st.binary(max_size=40))
def test_r8_a_code_anywhere_in_raw_bytes_is_redacted(
    code: str, sep: str, before: bytes, after: bytes
) -> None:
    typed = sep.join(code[i : i + 6] for i in range(0, LENGTH, 6))
    redacted = redact_bytes(before + typed.encode() + after)
    assert code.upper().encode() not in redacted.upper().replace(b"-", b"").replace(b" ", b"")


@given(code=codes, key=st.sampled_from(["order_id", "message_id", "x", "gift_card_code"]))
def test_r8_a_code_in_any_json_field_even_escaped_is_redacted(code: str, key: str) -> None:
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in code)
    raw = b'{"' + key.encode() + b'": "' + escaped.encode() + b'", "n": 1}'
    redacted = redact_bytes(raw)
    assert code.encode() not in redacted
    # The rest of the message survives as its shape (P5: unknown fields keep no value).
    assert orjson.loads(redacted)["n"] == "[number]"


def valid(message_id: str) -> bytes:
    return ordered(message_id, f"order-{message_id}")


def mutate(reason: str, **changes: object) -> bytes:
    """A purchase with message id `bad-<reason>`, changed (None drops a field)."""
    message = orjson.loads(valid(f"bad-{reason}"))
    for key, value in changes.items():
        if value is None:
            message.pop(key)
        else:
            message[key] = value
    return orjson.dumps(message)


SPACED_CODE = "CM6DZC    YRUCQW    RUQZ6W"  # redeems, passed the old detector
EMAIL_ID = "carol.private@example.net"
DEEP = b'{"message_id": "bad-too_deep", "order_id": "order-deep", "x": ' + b"[" * 1024
# Replies expected for each malformed input, by reason: None when it shows no usable message id.
MALFORMED: dict[str, tuple[bytes, str | None]] = {
    "not_json": (b"{this is not json", None),
    "not_utf8": (b'{"message_id": "bad-not_utf8", "x": "\xff"}', "bad-not_utf8"),
    "invalid_field": (mutate("invalid_field", amount="50.00"), "bad-invalid_field"),
    "missing_field": (mutate("missing_field", order_id=None), "bad-missing_field"),
    "unknown_type": (mutate("unknown_type", type="GiftCardStolen"), "bad-unknown_type"),
    "oversized": (mutate("oversized", payment_method="o" * 1_000_000), "bad-oversized"),
    "unknown_market": (mutate("unknown_market", market="ZZ"), "bad-unknown_market"),
    "currency_mismatch": (mutate("currency_mismatch", currency="GBP"), "bad-currency_mismatch"),
    "code_in_wrong_field": (mutate("code_in_wrong_field", payment_method=f"card {CODE}"),
                            "bad-code_in_wrong_field"),
    "too_deep": (DEEP, "bad-too_deep"),
    "duplicate_key": (mutate("duplicate_key").replace(b"{", b'{"amount":99999999,', 1),
                      "bad-duplicate_key"),
}
# Finding 6 and 7: a code with long separator runs, an e-mail as order id, as message id, and a
# control character in the order id (the dead letter's record key).
LEAKY: list[tuple[str, bytes, str | None]] = [
    ("code_in_wrong_field", mutate("spaced", payment_method=SPACED_CODE), "bad-spaced"),
    ("invalid_id", mutate("spaced_id", order_id=SPACED_CODE), "bad-spaced_id"),
    ("invalid_id", mutate("email_order", order_id=EMAIL_ID, amount="x"), "bad-email_order"),
    ("invalid_id", mutate("x", message_id=EMAIL_ID, amount="x"), None),
    ("invalid_id", mutate("nul", order_id="order\u0000x", amount="x"), "bad-nul"),
]


@pytest.fixture
def readers(kafka_bootstrap: str, topics: Topics) -> Iterator[tuple[TopicReader, TopicReader]]:
    dead, results = (TopicReader(kafka_bootstrap, t) for t in (topics.dead_letters, topics.results))
    yield dead, results
    dead.close()
    results.close()


def test_p5_r8_each_malformed_input_is_a_dead_letter_and_its_message_id_one_rejected_reply(
    service: Service,
    env_for: dict[str, str],
    clock: FixedClock,
    kafka_bootstrap: str,
    topics: Topics,
    readers: tuple[TopicReader, TopicReader],
) -> None:
    dead_reader, results_reader = readers
    bad = [raw for raw, _ in MALFORMED.values()] + [raw for _, raw, _ in LEAKY]
    reasons = list(MALFORMED) + [reason for reason, _, _ in LEAKY]
    replied = [mid for _, mid in MALFORMED.values()] + [mid for _, _, mid in LEAKY]
    expected = ["first", *[mid for mid in replied if mid], "last"]
    inputs = [valid("first"), *bad, valid("last")]
    with running_consumer(env_for, clock, kafka_bootstrap, topics):
        # One key, one partition: "last" comes after every bad input.
        produce(kafka_bootstrap, topics.checkout, inputs, key=b"k")
        # Dead letters are keyed by order id, so they spread over partitions: sort by source.
        letters = sorted(dead_reader.until(len(bad)), key=lambda d: d["source"]["offset"])
        results = results_reader.until(len(expected))
        dead_reader.poll(1000)
        results_reader.poll(1000)
    # Both outputs follow their committed JSON Schemas.
    for name, outputs in (("checkout-result.json", results), ("dead-letter.v2.json", letters)):
        contract = validator(name)
        for output in outputs:
            contract.validate(output)
    # Every message id exactly one reply; the valid ones accepted, the others rejected with
    # the dead letter's reason.
    assert sorted(r["message_id"] for r in results) == sorted(expected)
    assert len(dead_reader.raw) == len(bad)
    by_id = {r["message_id"]: r for r in results}
    assert by_id["first"]["status"] == by_id["last"]["status"] == "accepted"
    for reason, message_id in zip(reasons, replied, strict=True):
        if message_id:
            assert by_id[message_id]["status"] == "rejected"
            assert by_id[message_id]["reason"] == reason
            assert by_id[message_id]["card_id"] is None
    assert by_id["bad-invalid_field"]["type"] == "GiftCardOrdered"
    assert by_id["bad-invalid_field"]["order_id"] == "order-bad-invalid_field"
    assert by_id["bad-too_deep"]["order_id"] == "order-deep"
    assert [letter["reason"] for letter in letters] == reasons
    for offset, letter in enumerate(letters, start=1):
        assert letter["source"]["topic"] == topics.checkout
        assert letter["source"]["offset"] == offset
        assert letter["original_size"] == len(inputs[offset])
    by_reason = {reason: letters[reasons.index(reason)] for reason in MALFORMED}
    assert by_reason["invalid_field"]["detail"] == "amount: int_type"
    # Of a refused message, its id only as a keyed pseudonym (dead-letter schema v2).
    assert by_reason["invalid_field"]["message_id"] == service.pseudonyms.message(
        "bad-invalid_field")
    assert by_reason["oversized"]["original_truncated"] is True
    assert by_reason["duplicate_key"]["detail"] == "amount: given twice"
    assert by_reason["too_deep"]["message_id"] == service.pseudonyms.message("bad-too_deep")
    moved = base64.b64decode(by_reason["code_in_wrong_field"]["original_base64"])
    moved_order = orjson.loads(moved)["payment_method"]
    assert "[redacted]" in moved_order
    assert not any(group in moved_order for group in CODE.split("-"))
    assert letters[-2]["message_id"] is None  # the e-mail as message id: no id at all
    # P5: nothing secret or personal in any byte that left on the two output topics: values,
    # the originals inside the letters, and the record keys.
    keys = dead_reader.keys + results_reader.keys
    assert all(key is None or key.decode("ascii").isprintable() for key in keys)
    blob = b"\n".join(dead_reader.raw + results_reader.raw + [k for k in keys if k])
    blob += b"".join(v for hs in dead_reader.headers + results_reader.headers for _, v in hs)
    assert b"\x00" not in blob and b"\\u0000" not in blob  # (the originals are base64)
    blob += b"".join(base64.b64decode(letter["original_base64"]) for letter in letters)
    secrets = [CODE, CODE.replace("-", ""), BUYER["email"], BUYER["name"], PERSONAL, EMAIL_ID]
    secrets += [SPACED_CODE, *SPACED_CODE.split()]
    for secret in secrets:
        assert secret.encode() not in blob
    assert RECIPIENT["email"].encode() not in blob
    # Both outputs are CloudEvents too (binary mode): the SDK reads each record back.
    assert_cloudevents_outputs(results_reader, dead_reader)


def test_r8_redaction_keeps_a_generated_code_out_of_non_json_bytes() -> None:
    code = generate_code()
    raw = b"\x00garbage " + code.lower().encode() + b" gift_card_code: " + code.encode()
    assert code.replace("-", "").encode() not in redact_bytes(raw).upper().replace(b"-", b"")


@dataclass(frozen=True)
class Polled:
    """A record as the consumer polls it (offset and value are all the processor reads)."""

    offset: int
    value: bytes | None


def unsealed(service: Service, letter: dict[str, Any]) -> dict[str, Any]:
    token = letter.get("original_sealed")
    owner = service.vault.owner_of(token) if token else None
    return {**letter, "original_sealed": service.vault.open(owner, token) if owner else token}


def test_r3_a_refused_input_gets_the_same_reply_when_replayed_and_its_id_keeps_it(
    service: Service,
) -> None:
    processor = CheckoutProcessor(service.app, "order.checkout")
    records = [Polled(0, mutate("market", market="ZZ")), Polled(1, valid("ok")),
               Polled(2, valid("bad-market")), Polled(3, b'{"message_id": "x", "a": ' + b"[" * 99)]
    first = processor.process(0, records)
    # After a crash between the store commit and the publish, the same offsets come again.
    again = processor.process(0, records)
    assert again.results == first.results
    # The same letter, but for its sealed original: a fresh ciphertext of the same bytes.
    assert [unsealed(service, letter) for _, letter in again.dead] == [
        unsealed(service, letter) for _, letter in first.dead]
    statuses = [(r["message_id"], r["status"], r["reason"]) for _, r in first.results]
    assert statuses == [
        ("bad-market", "rejected", "unknown_market"),
        ("ok", "accepted", None),
        # The valid message reusing a refused message id gets that id's stored reply (R3).
        ("bad-market", "rejected", "unknown_market"),
        ("x", "rejected", "too_deep"),
    ]
    assert [letter["reason"] for _, letter in first.dead] == ["unknown_market", "too_deep"]


def test_a_message_failing_internally_gets_a_stored_rejected_reply_and_a_letter(
    service: Service, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order service never waits for nothing: a bug on one message answers `rejected`
    `internal_error` (stored, so a replay after a crash says the same) beside its dead letter,
    and the messages around it are applied."""
    processor = CheckoutProcessor(service.app, "order.checkout")
    order = processor.checkout.order

    def failing(uow: object, **purchase: object) -> object:
        if purchase["order_id"] == "order-boom":
            raise RuntimeError("a bug")
        return order(uow, **purchase)

    monkeypatch.setattr(processor.checkout, "order", failing)
    records = [Polled(0, valid("ok-1")), Polled(1, valid("boom")), Polled(2, valid("ok-2"))]
    outcome = processor.process(0, records)
    replies = {result["message_id"]: result for _, result in outcome.results}
    assert [replies[m]["status"] for m in ("ok-1", "boom", "ok-2")] == [
        "accepted", "rejected", "accepted"]
    assert replies["boom"]["reason"] == "internal_error"
    assert [letter["reason"] for _, letter in outcome.dead] == ["internal_error"]
    replayed = processor.process(0, records)  # as after a crash before publishing
    assert [result for _, result in replayed.results] == [result for _, result in outcome.results]
    assert [letter["reason"] for _, letter in replayed.dead] == ["internal_error"]
