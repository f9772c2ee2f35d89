"""Hostile `order.checkout` values: bounded parsing, one code detector, redaction."""

from __future__ import annotations

import base64
import json
import time
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.codes import ALPHABET, LENGTH, SEPARATORS, contains_code, generate_code, normalize_code
from domain.markets import Markets
from infra.wire import dead_letters
from infra.wire.dead_letters import Invalid, dead_letter, peek, redact_bytes, redact_text
from infra.wire.messages import parse, rejected
from infra.wire.scan import MAX_DEPTH, MAX_VALUE_BYTES, too_deep

MARKETS = Markets.load()
AT = "2026-03-01T10:00:00+00:00"
SPACED_CODE = "CM6DZC    YRUCQW    RUQZ6W"  # passed the old detector, yet redeems
EMAIL = "carol.private@example.net"


def ordered(**changes: object) -> dict[str, object]:
    message: dict[str, object] = {
        "message_id": "m-1", "type": "GiftCardOrdered", "occurred_at": AT, "order_id": "o-1",
        "market": "FR", "amount": 5000, "currency": "EUR", "payment_method": "card",
        "buyer": {"customer_id": "cust-1", "email": "alice@example.com"},
    }
    message.update(changes)
    return message


def completed(**changes: object) -> dict[str, object]:
    message: dict[str, object] = {
        "message_id": "m-2", "type": "CheckoutCompleted", "occurred_at": AT, "order_id": "o-2",
        "market": "FR", "customer_id": "cust-1", "order_total": 3000, "currency": "EUR",
        "gift_card_code": generate_code(),
    }
    message.update(changes)
    return message


def refusal(raw: bytes) -> Invalid:
    with pytest.raises(Invalid) as caught:
        parse(raw, MARKETS)
    return caught.value


def letter(raw: bytes, invalid: Invalid) -> tuple[str | None, dict[str, object]]:
    return dead_letter(invalid, topic="order.checkout", partition=0, offset=7, raw=raw)


def deep(levels: int) -> bytes:
    """A purchase whose message id and order id are visible at the top, then `levels` arrays."""
    head = orjson.dumps(ordered(message_id="m-deep", order_id="o-deep"))[:-1]
    return head + b',"x":' + b"[" * levels + b"]" * levels + b"}"


@pytest.mark.parametrize("levels", [255, 1024, 100_000])
def test_deep_json_is_refused_too_deep_dead_lettered_and_answered(levels: int) -> None:
    raw = deep(levels)
    started = time.perf_counter()
    invalid = refusal(raw)
    key, sent = letter(raw, invalid)
    reply = rejected(raw, invalid)
    # Linear, not stuck: ~0.1 s here when the machine is quiet; generous for a shared one.
    assert time.perf_counter() - started < 10
    assert invalid.reason == "too_deep"
    assert key == "o-deep"
    assert sent["reason"] == "too_deep" and sent["message_id"] == "m-deep"
    assert sent["original_base64"]  # redacted without recursion, not the fallback letter
    assert reply == {"message_id": "m-deep", "type": "GiftCardOrdered", "order_id": "o-deep",
                     "status": "rejected", "reason": "too_deep", "card_id": None}


def test_depth_is_counted_outside_strings_only() -> None:
    assert not too_deep(b'{"a": "' + b"[" * 1000 + b'"}')
    assert not too_deep(b'{"a": "\\"' + b"[" * 1000 + b'"}')
    assert too_deep(b"[" * (MAX_DEPTH + 1))
    assert not too_deep(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    # An unterminated string runs to the end: no rescanning (a quadratic blow-up) either.
    started = time.perf_counter()
    assert not too_deep(b'["' + b'\\"[' * 300_000)
    assert time.perf_counter() - started < 1


def test_message_id_below_the_top_level_is_not_taken_for_the_reply() -> None:
    raw = b'{"x": {"message_id": "inner"}, "y": ' + b"[" * 100 + b"]" * 100 + b"}"
    assert rejected(raw, refusal(raw)) is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"order_total": 1, ' + orjson.dumps(completed())[1:], "order_total"),
        (b'{"type": "GiftCardOrdered", ' + orjson.dumps(completed())[1:], "type"),
        # Inner objects are read first: their duplicate is the one named.
        (orjson.dumps(ordered())[:-1] + b', "buyer": {"customer_id": "a", "customer_id": "b"}}',
         "customer_id"),
        (orjson.dumps(ordered())[:-1] + b', "buyer": {"customer_id": "a"}}', "buyer"),
        (orjson.dumps(ordered(buyer={"customer_id": "c"}))
         .replace(b'"customer_id"', b'"customer_id":"x","customer_id"'), "customer_id"),
    ],
)
def test_duplicate_keys_at_any_level_are_refused(raw: bytes, field: str) -> None:
    invalid = refusal(raw)
    assert (invalid.reason, invalid.detail) == ("duplicate_key", f"{field}: given twice")


def test_duplicate_message_ids_that_disagree_get_no_reply() -> None:
    raw = b'{"message_id": "a", ' + orjson.dumps(ordered(message_id="b"))[1:]
    assert rejected(raw, refusal(raw)) is None
    same = b'{"message_id": "b", ' + orjson.dumps(ordered(message_id="b"))[1:]
    assert rejected(same, refusal(same))["message_id"] == "b"  # type: ignore[index]


def test_numbers_beyond_int_digit_limit_are_refused_not_raised() -> None:
    # Python's int() refuses more than 4,300 digits: the duplicate-key pass must not trip on it.
    invalid = refusal(orjson.dumps(ordered())[:-1] + b', "n": ' + b"7" * 5000 + b"}")
    assert invalid.reason == "not_json" and "777" not in invalid.detail


def test_r8_finding_6_spaced_code_in_an_order_id_is_refused_and_redacted() -> None:
    assert contains_code(SPACED_CODE)
    raw = orjson.dumps(completed(order_id=SPACED_CODE))
    invalid = refusal(raw)
    assert invalid.reason == "invalid_id"  # spaces are not in an id's alphabet (domain.ids)
    assert invalid.detail == "order_id: not an id"
    key, sent = letter(raw, invalid)
    reply = rejected(raw, invalid)
    assert key is None and reply is not None and reply["order_id"] is None
    original = base64.b64decode(str(sent["original_base64"]))
    assert normalize_code(SPACED_CODE).encode() not in normalize_code(original.decode()).encode()
    assert orjson.loads(original)["order_id"] == "[redacted]"


codes = st.text(alphabet=ALPHABET + ALPHABET.lower(), min_size=LENGTH, max_size=LENGTH)
runs = st.lists(st.text(alphabet=SEPARATORS, max_size=6), min_size=LENGTH, max_size=LENGTH)


def spaced(code: str, separators: list[str]) -> str:
    return "".join(symbol + run for symbol, run in zip(code, separators, strict=True))


@given(code=codes, separators=runs, before=st.text(max_size=12), after=st.text(max_size=12))
def test_r8_any_code_with_any_separator_runs_is_detected_and_redacted(
    code: str, separators: list[str], before: str, after: str
) -> None:
    typed = spaced(code, separators)
    assert normalize_code(typed) == code.upper()  # it redeems the card...
    assert contains_code(typed)  # ...so the detector fires,
    text = f"x{before}{typed}{after}x"  # wherever it sits (x: not a UUID)
    assert contains_code(text)
    assert code.upper() not in normalize_code(redact_text(text))


@given(value=st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.integers(0, 10**12).map(lambda n: f"ORD-{n}"),
    st.integers(0, 10**12).map(lambda n: f"order-{n}"),
    st.integers(0, 10**9).map(lambda n: f"cust-{n}"),
    st.dates().map(lambda d: f"order-{d.isoformat()}-{d.toordinal()}"),
))
def test_r8_ordinary_ids_are_not_taken_for_codes(value: str) -> None:
    assert not contains_code(value)


def test_r8_the_detector_trade_off_is_documented() -> None:
    # False positives the detector accepts to never miss a code: 18+ symbols in a row once
    # separators are gone (a UUID without its dashes, about a third of them; a long numeric id
    # without 0 or 1, alone or after a word whose tail is made of symbols; a run of words).
    assert contains_code("2345678923456789234")
    assert contains_code("order-24999999999642")  # "RDER" + 14 digits
    assert contains_code(str(uuid.UUID(int=0x23456789ABCDEF23456789ABCDEF2345)).replace("-", ""))
    assert not contains_code(str(uuid.UUID(int=0x23456789ABCDEF23456789ABCDEF2345)))
    assert not contains_code("ABCDEFGHJKMNPQRST")  # 17 symbols: one short of a code


def test_r8_short_text_that_upper_cases_into_a_code_is_detected() -> None:
    typed = "\u00df" * 9  # "ß" upper-cases to "SS": nine characters redeem SSSSSS-SSSSSS-SSSSSS
    assert normalize_code(typed) == "S" * LENGTH
    assert contains_code(typed)
    assert "S" * LENGTH not in normalize_code(redact_text(f"order {typed}"))


def test_p5_e_mails_and_control_characters_stay_out_of_letter_fields_and_keys() -> None:
    raw = orjson.dumps(ordered(order_id=EMAIL, message_id=EMAIL, amount="x"))
    key, sent = letter(raw, refusal(raw))
    assert key is None and sent["message_id"] == "[redacted]"
    assert rejected(raw, refusal(raw)) is None  # its id cannot be published
    nul = orjson.dumps(ordered(order_id="o\u0000x", message_id="m\u0000", amount="x"))
    key, sent = letter(nul, refusal(nul))
    assert key is None and sent["message_id"] == "[redacted]"
    extra = orjson.dumps(ordered(**{EMAIL: 1, f"k\u0000{SPACED_CODE}": 2}))
    _, sent = letter(extra, refusal(extra))
    published = orjson.dumps({k: v for k, v in sent.items() if k != "original_base64"})
    assert sent["reason"] == "unexpected_field"
    assert EMAIL.encode() not in published and b"\\u0000" not in published
    original = base64.b64decode(str(sent["original_base64"]))
    assert EMAIL.encode() not in original
    assert b"CM6DZC" not in original


def test_a_letter_goes_out_without_its_original_when_redaction_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(raw: bytes) -> bytes:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(dead_letters, "redact_bytes", broken)
    raw = orjson.dumps(ordered(message_id=EMAIL, amount="x"))
    key, sent = letter(raw, Invalid("invalid_field", "amount: int_type"))
    assert key is None
    assert sent == {
        "reason": "invalid_field", "detail": "", "message_id": None,
        "source": {"topic": "order.checkout", "partition": 0, "offset": 7},
        "original_size": len(raw), "original_truncated": True, "original_base64": None,
    }


def test_r8_escaped_codes_are_redacted_in_too_deep_json_as_well() -> None:
    code = normalize_code(generate_code())
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in code).encode()
    raw = b'{"order_id": "' + escaped + b'", "x": ' + b"[" * 500 + b"}"
    redacted = redact_bytes(raw)
    assert code.encode() not in redacted and escaped not in redacted
    # P5: unparsed input keeps no values at all, only their sizes (the code is 18 long).
    assert b'"order_id": "[string:18]"' in redacted


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)


def hostile() -> st.SearchStrategy[bytes]:
    """Raw bytes, JSON of any shape, and valid messages with one field replaced or spliced."""
    fields = st.sampled_from(sorted(ordered()) + sorted(completed()))
    swapped = st.tuples(st.sampled_from([ordered(), completed()]), fields, json_values).map(
        lambda t: json.dumps({**t[0], t[1]: t[2]}).encode())
    cut = st.tuples(st.sampled_from([orjson.dumps(ordered()), orjson.dumps(completed())]),
                    st.integers(0, 300), st.binary(max_size=20)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:])
    nested = st.integers(0, 3000).map(lambda n: b'{"message_id":"m",' + b'"a":[' * n)
    return st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                     swapped, cut, nested)


@settings(max_examples=400, deadline=None)
@given(raw=hostile())
def test_r8_p5_fuzz_parse_raises_nothing_but_invalid_and_a_letter_always_goes_out(
    raw: bytes,
) -> None:
    try:
        parse(raw, MARKETS)
        return
    except Invalid as invalid:
        key, sent = letter(raw, invalid)
        reply = rejected(raw, invalid)
        reason = invalid.reason
    assert sent["original_base64"] is not None  # redaction held: not the fallback letter
    assert len(base64.b64decode(str(sent["original_base64"]))) <= MAX_VALUE_BYTES
    assert key is None or key == peek(raw, "order_id")
    if reply is not None:
        assert reply["status"] == "rejected" and reply["reason"] == reason


@pytest.mark.parametrize("field", ["order_id", "message_id", "payment_method", "buyer"])
def test_p5_an_e_mail_in_an_id_published_in_clear_is_refused(field: str) -> None:
    """Ids reach giftcard.events and the replies in clear: an e-mail there would stay for ever."""
    value: object = EMAIL if field != "buyer" else {"customer_id": EMAIL}
    invalid = refusal(orjson.dumps(ordered(**{field: value})))
    # An id field refuses it as any value that is not an id (domain.ids), on every path.
    assert invalid.reason == ("personal_data_in_field" if field == "payment_method"
                              else "invalid_id")
    assert EMAIL not in invalid.detail
    assert refusal(orjson.dumps(completed(customer_id=EMAIL))).reason == "invalid_id"


PHONE, ADDRESS = "+33 6 12 34 56 78", "12 rue des Lilas, 75011 Paris"
NOTE = "leave it with Mme Roux"


@pytest.mark.parametrize("deep_tail", [False, True])
def test_p5_dead_letters_keep_field_paths_types_and_sizes_never_unknown_values(
    deep_tail: bool,
) -> None:
    message = ordered(phone=PHONE, shipping={"address": ADDRESS, "floor": 3}, notes=[NOTE])
    message["buyer"] = {"customer_id": "cust-1", "mobile": PHONE}
    raw = orjson.dumps(message)
    if deep_tail:  # too deep to parse: judged string by string
        raw = raw[:-1] + b',"x":' + b"[" * (MAX_DEPTH + 5) + b"}"
    _, sent = letter(raw, refusal(raw))
    original = base64.b64decode(str(sent["original_base64"]))
    for value in (PHONE, ADDRESS, NOTE, "cust-1", "Lilas", "Roux"):
        assert value.encode() not in original, value
    for path in (b'"phone"', b'"shipping"', b'"address"', b'"notes"', b'"mobile"'):
        assert path in original  # the operator sees which fields the sender got wrong
    assert b'"[string:17]"' in original  # and each value's type and size
    if not deep_tail:
        shown = orjson.loads(original)
        assert shown["shipping"] == {"address": "[string:29]", "floor": "[number]"}
        assert (shown["order_id"], shown["amount"], shown["market"]) == ("o-1", 5000, "FR")
