"""Malformed checkout inputs end as redacted dead letters while the consumer keeps consuming."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.dead_letters import redact_bytes
from domain.codes import ALPHABET, LENGTH, generate_code
from infra.bootstrap import Service
from infra.kafka.topics import Topics
from tests.conftest import FixedClock
from tests.integration.kafka_helpers import (
    CapturingMailer,
    TopicReader,
    produce,
    running_consumer,
)
from tests.integration.test_checkout_consumer import BUYER, PERSONAL, RECIPIENT, ordered

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
    assert orjson.loads(redacted)["n"] == 1  # the rest of the message survives


def valid(message_id: str) -> bytes:
    return ordered(message_id, f"order-{message_id}")


def mutate(**changes: object) -> bytes:
    message = orjson.loads(valid("bad"))
    for key, value in changes.items():
        if value is None:
            message.pop(key)
        else:
            message[key] = value
    return orjson.dumps(message)


MALFORMED = {
    "not_json": b"{this is not json",
    "not_utf8": b'{"message_id": "\xff\xfe"}',
    "invalid_field": mutate(amount="50.00"),
    "missing_field": mutate(order_id=None),
    "unknown_type": mutate(type="GiftCardStolen"),
    "oversized": mutate(payment_method="o" * 1_000_000),
    "unknown_market": mutate(market="ZZ"),
    "currency_mismatch": mutate(currency="GBP"),
    "code_in_wrong_field": mutate(order_id=f"order {CODE}"),
}


@pytest.fixture
def readers(kafka_bootstrap: str, topics: Topics) -> Iterator[tuple[TopicReader, TopicReader]]:
    dead, results = (TopicReader(kafka_bootstrap, t) for t in (topics.dead_letters, topics.results))
    yield dead, results
    dead.close()
    results.close()


def test_p5_r8_each_malformed_input_is_a_dead_letter_and_consuming_goes_on(
    service: Service,
    env_for: dict[str, str],
    clock: FixedClock,
    kafka_bootstrap: str,
    topics: Topics,
    readers: tuple[TopicReader, TopicReader],
) -> None:
    dead_reader, results_reader = readers
    inputs = [valid("first"), *MALFORMED.values(), valid("last")]
    with running_consumer(env_for, clock, kafka_bootstrap, topics, CapturingMailer()):
        # One key, one partition: "last" comes after every bad input.
        produce(kafka_bootstrap, topics.checkout, inputs, key=b"k")
        # Dead letters are keyed by order id, so they spread over partitions: sort by source.
        letters = sorted(dead_reader.until(len(MALFORMED)), key=lambda d: d["source"]["offset"])
        results = results_reader.until(2)
    assert [r["message_id"] for r in results] == ["first", "last"]
    assert all(r["status"] == "accepted" for r in results)
    assert [letter["reason"] for letter in letters] == list(MALFORMED)
    for offset, letter in enumerate(letters, start=1):
        assert letter["source"]["topic"] == topics.checkout
        assert letter["source"]["offset"] == offset
        assert letter["original_size"] == len(inputs[offset])
    by_reason = {letter["reason"]: letter for letter in letters}
    assert by_reason["invalid_field"]["detail"] == "amount: int_type"
    assert by_reason["invalid_field"]["message_id"] == "bad"
    assert by_reason["oversized"]["original_truncated"] is True
    moved = base64.b64decode(by_reason["code_in_wrong_field"]["original_base64"])
    moved_order = orjson.loads(moved)["order_id"]
    assert "[redacted]" in moved_order
    assert not any(group in moved_order for group in CODE.split("-"))
    # P5: nothing secret or personal in any byte that left on the two output topics.
    blob = b"\n".join(dead_reader.raw + results_reader.raw)
    blob += b"".join(base64.b64decode(letter["original_base64"]) for letter in letters)
    for secret in [CODE, CODE.replace("-", ""), BUYER["email"], BUYER["name"], PERSONAL]:
        assert secret.encode() not in blob
    assert RECIPIENT["email"].encode() not in blob


def test_r8_redaction_keeps_a_generated_code_out_of_non_json_bytes() -> None:
    code = generate_code()
    raw = b"\x00garbage " + code.lower().encode() + b" gift_card_code: " + code.encode()
    assert code.replace("-", "").encode() not in redact_bytes(raw).upper().replace(b"-", b"")
