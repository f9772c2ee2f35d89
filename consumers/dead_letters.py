"""Dead letters: why an input was refused, where from, and its bytes with secrets redacted."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
from pydantic import ValidationError

from domain.codes import ALPHABET, LENGTH

MAX_VALUE_BYTES = 64 * 1024
REDACTED = "[redacted]"
# Values of these keys are codes or clear personal data (R8, P5): never echoed.
SECRET_KEYS = frozenset({"gift_card_code", "code", "promo_codes", "email", "name", "message"})

_SYMBOL = f"[{ALPHABET}{ALPHABET.lower()}]"
# A code as typed: 18 symbols, optionally broken by separators (normalize_code drops them).
# A longer run is taken whole, so that no tail of a code glued to other symbols survives.
CODE_PATTERN = re.compile(f"{_SYMBOL}(?:[-\\s]{{0,3}}{_SYMBOL}){{{LENGTH - 1},}}")
_BYTES_CODE = re.compile(CODE_PATTERN.pattern.encode())
# Bounded repeats: unbounded ones backtrack quadratically over a 1 MB input without '@'.
_BYTES_EMAIL = re.compile(rb"[^\s\"'<>@,;:]{1,64}@[^\s\"'<>@,;:]{1,255}")
_BYTES_SECRET_FIELD = re.compile(
    rb'("(?:' + b"|".join(k.encode() for k in sorted(SECRET_KEYS)) + rb')"\s*:\s*)'
    rb'("(?:[^"\\]|\\.)*"?|\[[^\]]*\]?|[^,}\s]*)'
)

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


def from_validation(error: ValidationError) -> Invalid:
    """The first error's reason and field path (pydantic's own messages may quote the input)."""
    first = error.errors(include_input=False, include_url=False)[0]
    kind = str(first["type"])
    loc = [str(part) for part in first["loc"]]
    if kind == "json_invalid" or not loc or kind.startswith("union_tag"):
        return Invalid(_REASONS.get(kind, "invalid_message"), kind)
    # The first element of `loc` is the union tag (the message type) for typed messages.
    field = ".".join(loc[1:]) or loc[0]
    return Invalid(_REASONS.get(kind, "invalid_field"), f"{field}: {kind}")


def contains_code(text: str) -> bool:
    return CODE_PATTERN.search(text) is not None


def redact_bytes(raw: bytes) -> bytes:
    """Secret field values, anything shaped like a code, and email addresses, blanked."""
    if (structured := _redact_json(raw)) is not None:
        return structured
    out = _BYTES_SECRET_FIELD.sub(lambda m: m.group(1) + b'"' + REDACTED.encode() + b'"', raw)
    out = _BYTES_CODE.sub(REDACTED.encode(), out)
    return _BYTES_EMAIL.sub(REDACTED.encode(), out)


def _redact_json(raw: bytes) -> bytes | None:
    # Parsed JSON is redacted structurally, so that \u escapes cannot smuggle a code through.
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(_redact_value(value, None))


def _redact_value(value: Any, key: str | None) -> Any:
    if key in SECRET_KEYS and value is not None:
        return REDACTED
    if isinstance(value, dict):
        return {_redact_text(str(k)): _redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(item, key) for item in value]
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, int | float) and contains_code(str(value)):  # digits 2-9 are symbols
        return REDACTED
    return value


def _redact_text(text: str) -> str:
    return _BYTES_EMAIL.sub(REDACTED.encode(), CODE_PATTERN.sub(REDACTED, text).encode()).decode()


def dead_letter(
    invalid: Invalid,
    *,
    topic: str,
    partition: int,
    offset: int,
    raw: bytes | None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The published dead letter; an oversized original is cut after redaction."""
    original = redact_bytes(raw or b"")
    return {
        "reason": invalid.reason,
        "detail": invalid.detail,
        "message_id": message_id,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "original_size": len(raw or b""),
        "original_truncated": len(original) > MAX_VALUE_BYTES,
        "original_base64": base64.b64encode(original[:MAX_VALUE_BYTES]).decode(),
    }
