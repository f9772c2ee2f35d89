"""Dead letters: why an input was refused, where from, and its shape with values withheld."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from consumers.scan import MAX_VALUE_BYTES, STRING, shown, too_deep
from domain.codes import code_spans, contains_code
from domain.ids import is_id
from infra.pseudonyms import MESSAGE_PATTERN

log = logging.getLogger("giftcards.checkout")
REDACTED = "[redacted]"
# Values of these keys are codes or clear personal data (R8, P5): never echoed.
SECRET_KEYS = frozenset({"gift_card_code", "code", "promo_codes", "email", "name", "message"})
# Bounded repeats: unbounded ones backtrack quadratically over a 1 MB input without '@'.
EMAIL = re.compile(r"[^\s\"'<>@,;:]{1,64}@[^\s\"'<>@,;:]{1,255}")
_STRING = re.compile(STRING, re.DOTALL)
_IS_KEY = re.compile(r"\s*:")
_SECRET_FIELD = re.compile(
    r'("(?:' + "|".join(sorted(SECRET_KEYS)) + r')"\s*:\s*)'
    r'("(?:[^"\\]|\\.)*"?|\[[^\]]*\]?|[^,}\s]*)'
)
# Contract fields whose values an operator needs to find and fix the sender, and which are not
# personal (P5): every other value is kept only as its type and size.
KEPT_KEYS = frozenset({
    "type", "message_id", "occurred_at", "order_id", "market", "amount", "currency",
    "payment_method", "order_total", "contains_gift_cards", "returned_amount", "received_on",
    "card_id",
})
# Version 2 letters name the message and the order only by pseudonyms: not in the original.
KEPT_KEYS_V2 = KEPT_KEYS - {"message_id", "order_id"}
CONTAINERS = frozenset({"buyer", "recipient"})  # their fields are judged one by one
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A value published outside the redacted original (reply fields, record keys): plain ids only.
_PLAIN = re.compile(r"[ -~]{1,200}")

_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
DEAD_LETTER_SCHEMA: dict[str, Any] = {
    "title": "DeadLetter",
    "type": "object",
    "properties": {
        "reason": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "detail": {"type": "string", "pattern": _NO_CONTROL},
        "message_id": {"type": ["string", "null"], "pattern": _NO_CONTROL},
        "source": {
            "type": "object",
            "properties": {
                "topic": {"type": "string"},
                "partition": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0},
            },
            "required": ["topic", "partition", "offset"],
            "additionalProperties": False,
        },
        "original_size": {"type": "integer", "minimum": 0},
        "original_truncated": {"type": "boolean"},
        "original_base64": {"type": ["string", "null"], "contentEncoding": "base64"},
    },
    "required": ["reason", "detail", "message_id", "source", "original_size",
                 "original_truncated", "original_base64"],
    "additionalProperties": False,
}
# Version 2 (what the consumer writes): the refused message's id only as a keyed pseudonym,
# a detail made of field names only, and the original as received only sealed under the
# day's dead-letter key, which retention destroys (GIFTCARDS_RETENTION_DEAD_LETTER_DAYS).
# Version 1 letters stay on the topic until it expires them: both schemas stay published.
DEAD_LETTER_SCHEMA_V2: dict[str, Any] = {
    **DEAD_LETTER_SCHEMA,
    "title": "DeadLetter v2",
    "properties": {
        **DEAD_LETTER_SCHEMA["properties"],
        "detail": {"type": "string", "pattern": "^([a-z0-9_.*]+: )?[A-Za-z0-9_ ,*-]*$"},
        "message_id": {"anyOf": [{"type": "string", "pattern": MESSAGE_PATTERN},
                                 {"type": "null"}],
                       "description": "keyed pseudonym of the message id, when the input "
                       "showed one that is an id"},
        "original_sealed": {"type": ["string", "null"], "description": "the input as "
                            "received, sealed under the vault key of the day it was refused; "
                            "unreadable once `gdpr purge` destroys that key"},
    },
    "required": [*DEAD_LETTER_SCHEMA["required"], "original_sealed"],
}

# pydantic error types -> the stable reasons published on the dead-letter topic.
_REASONS = {
    "missing": "missing_field",
    "union_tag_invalid": "unknown_type",
    "union_tag_not_found": "missing_type",
    "json_invalid": "not_json",
    "extra_forbidden": "unexpected_field",
    "dict_type": "not_an_object",
    "model_type": "not_an_object",
}


class Invalid(Exception):
    """An input that cannot become a command; `reason` is stable, `detail` never holds values."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def from_validation(error: ValidationError, id_fields: frozenset[str] = frozenset()) -> Invalid:
    """The first error's reason and field path (pydantic's own messages may quote the input);
    a string in one of `id_fields` that is not an id is `invalid_id`, as on every path."""
    first = error.errors(include_input=False, include_url=False)[0]
    kind = str(first["type"])
    loc = [str(part) for part in first["loc"]]
    if kind == "json_invalid" or not loc or kind.startswith("union_tag"):
        return Invalid(_REASONS.get(kind, "invalid_message"), kind)
    # The first element of `loc` is the union tag (the message type) for typed messages.
    field = ".".join(loc[1:]) or loc[0]
    if loc[-1] in id_fields and kind.startswith("string_"):
        return Invalid("invalid_id", f"{field}: not an id")
    return Invalid(_REASONS.get(kind, "invalid_field"), f"{field}: {kind}")


def plain(text: str | None) -> str | None:
    """`text` if it may be published as it is: printable ASCII, no code, no e-mail."""
    if text is None or not _PLAIN.fullmatch(text) or contains_code(text) or EMAIL.search(text):
        return None
    return text


def peek(raw: bytes | None, field: str) -> str | None:
    """A top-level string field of any input, if it has one value, publishable as it is: an
    id (domain.ids), never free text."""
    value = plain(shown(raw, field))
    return value if is_id(value) else None


def redact_text(text: str) -> str:
    """Codes (found as a redemption would read them) and e-mail addresses, blanked."""
    for start, end in reversed(code_spans(text)):
        text = text[:start] + REDACTED + text[end:]
    return EMAIL.sub(REDACTED, text)


def redact_bytes(raw: bytes, kept: frozenset[str] = KEPT_KEYS) -> bytes:
    """Secret field values, anything shaped like a code, and email addresses, blanked; values
    of fields not `kept` shown as their type and size."""
    if not too_deep(raw) and (structured := _redact_json(raw, kept)) is not None:
        return structured
    # Too deep to parse, or not JSON: string by string, then the whole text, without recursion.
    text = raw.decode("utf-8", "replace")
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)
    return redact_text(
        _STRING.sub(lambda m: _redact_token(m.group(), _IS_KEY.match(text, m.end())), text)
    ).encode()


def _redact_token(token: str, is_key: object) -> str:
    # Decoded first, so that \u escapes cannot smuggle a code through. Unparsed input has no
    # fields to judge: a key (a field path) is kept, redacted; every value as its size only.
    try:
        text = json.loads(token)
    except ValueError:
        return f'"{REDACTED}"'
    if not isinstance(text, str) or text == REDACTED:
        return token
    return orjson.dumps(key_shown(text) if is_key else shape(text)).decode()


def _redact_json(raw: bytes, kept: frozenset[str]) -> bytes | None:
    # Parsed JSON is redacted structurally, so that \u escapes cannot smuggle a code through.
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(_redact_value(value, None, kept))


_FIELD_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def key_shown(key: str) -> str:
    """A key of the input as a letter shows it: a field name as it is (codes and e-mails
    blanked), anything else (free text sent as a key) as its size only."""
    return redact_text(key) if _FIELD_KEY.fullmatch(key) else f"[key:{len(key)}]"


def shape(value: Any) -> Any:
    """What an operator may see of a value that is not a known, non-personal contract field:
    its type and size (a phone number, an address or a note in an unknown field: never)."""
    if isinstance(value, dict):
        return {key_shown(str(k)): shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    if value is None:
        return None
    if isinstance(value, str):
        return f"[string:{len(value)}]"
    return f"[{'boolean' if isinstance(value, bool) else 'number'}]"


def _redact_value(value: Any, key: str | None, kept: frozenset[str], top: bool = True) -> Any:
    if key in SECRET_KEYS and value is not None:
        return REDACTED
    if isinstance(value, dict) and (top or key in CONTAINERS):
        return {key_shown(str(k)): _redact_value(v, str(k), kept, False)
                for k, v in value.items()}
    if key not in kept:
        return shape(value)
    if isinstance(value, dict | list):
        return shape(value)
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int | float) and contains_code(str(value)):  # digits 2-9 are symbols
        return REDACTED
    return value


@dataclass(frozen=True)
class Sealing:
    """What a version 2 letter needs: `seal` (the original as received, under the day's
    dead-letter key), and the keyed pseudonyms of an order id (the record key) and of a
    message id (infra.pseudonyms)."""

    seal: Callable[[bytes], str]
    order: Callable[[str], str]
    message: Callable[[str], str]


# A field path and the kind of error, made of field names only (a key of the input that is
# not shaped like one, e.g. free text sent as a key, is shown as `*`).
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}|[0-9]{1,3}")
_WORD = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_-]{0,63}|[0-9]{1,9}),?")  # the service's own words


def field_detail(detail: str) -> str:
    """A letter's detail with every path segment that is not a field name, and every word
    that is not one of the service's own, blanked (`*`)."""
    path, sep, kind = detail.rpartition(": ")
    words = " ".join(w if _WORD.fullmatch(w) else "*" for w in kind.split(" ")) if kind else ""
    if not sep:
        return words
    return ".".join(p if _NAME.fullmatch(p) else "*" for p in path.split(".")) + ": " + words


def dead_letter(
    invalid: Invalid, *, topic: str, partition: int, offset: int, raw: bytes | None,
    sealing: Sealing | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """The record key and the dead letter: every field redacted, an oversized original cut.
    With `sealing`, a version 2 letter (DEAD_LETTER_SCHEMA_V2): the key and message id as
    pseudonyms, the detail as field names, and the original (cut alike) sealed.

    Whatever the input, a letter goes out (the partition must move on): if peeking or redaction
    fail, one with the reason, the source and the size, without the original.
    """
    source = {"topic": topic, "partition": partition, "offset": offset}
    size = len(raw or b"")
    try:
        original = redact_bytes(raw or b"", KEPT_KEYS if sealing is None else KEPT_KEYS_V2)
        message_id = shown(raw, "message_id")
        key = peek(raw, "order_id")
        detail = _CONTROL.sub("?", redact_text(invalid.detail))
        letter = {
            "reason": invalid.reason,
            "detail": detail,
            "message_id": message_id if message_id is None else plain(message_id) or REDACTED,
            "source": source,
            "original_size": size,
            "original_truncated": len(original) > MAX_VALUE_BYTES,
            "original_base64": base64.b64encode(original[:MAX_VALUE_BYTES]).decode(),
        }
        if sealing is None:
            return key, letter
        return key and sealing.order(key), {
            **letter,
            "detail": field_detail(detail),
            "message_id": sealing.message(message_id)
            if message_id is not None and is_id(message_id) else None,
            "original_sealed": sealing.seal(raw[:MAX_VALUE_BYTES]) if raw else None,
        }
    except Exception as error:
        log.error("offset %d: dead letter without original (%s)", offset, type(error).__name__)
        minimal: dict[str, Any] = {
            "reason": invalid.reason,
            "detail": "",
            "message_id": None,
            "source": source,
            "original_size": size,
            "original_truncated": True,
            "original_base64": None,
        }
        return None, minimal if sealing is None else {**minimal, "original_sealed": None}
