"""A bounded look at raw JSON bytes: nesting depth, keys given twice, top-level string fields."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_VALUE_BYTES = 64 * 1024
MAX_DEPTH = 32
# One JSON string (an unterminated one runs to the end: no rescan, no quadratic blow-up),
# or one structural byte.
STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"?'
_STRING_BYTES = re.compile(STRING.encode(), re.DOTALL)
_TOKEN = re.compile(STRING.encode() + rb"|[\[\]{}:,]", re.DOTALL)
_OPENERS = b"[{"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit`, brackets inside strings aside."""
    if raw.count(b"{") + raw.count(b"[") <= limit:  # the common case, at C speed
        return False
    depth = 0
    for byte in _STRING_BYTES.sub(b"", raw).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPENERS else -1
        if depth > limit:
            return True
    return False


def top_level_strings(raw: bytes) -> dict[str, list[str]]:
    """The string values of the top-level object's keys, each occurrence, malformed input or not.

    Reads at most MAX_VALUE_BYTES, token by token without recursion, so any depth is harmless.
    """
    fields: dict[str, list[str]] = {}
    depth = 0
    pending: str | None = None  # a key read at depth 1, waiting for its colon
    key: str | None = None  # a key whose value comes next
    for match in _TOKEN.finditer(raw[:MAX_VALUE_BYTES].lstrip()):
        token = match.group()
        if depth == 0 and token != b"{":
            break  # not an object, or its end
        if token[:1] == b'"':
            if depth == 1:
                text = _decode(token)
                if key is not None:
                    if text is not None:
                        fields.setdefault(key, []).append(text)
                    key = None
                else:
                    pending = text
        elif token == b":":
            if depth == 1:
                key, pending = pending, None
        elif token == b",":
            if depth == 1:
                key = pending = None
        else:
            if depth == 1:  # a nested value: not a string
                key = pending = None
            depth += 1 if token in (b"{", b"[") else -1
            if depth == 0:
                break
    return fields


def _decode(token: bytes) -> str | None:
    try:
        text = json.loads(token)
    except ValueError:  # unterminated, a bad escape or not UTF-8
        return None
    return text if isinstance(text, str) else None


def shown(raw: bytes | None, field: str) -> str | None:
    """A top-level string field of any input, if it has one value (a duplicate may disagree)."""
    found = set(top_level_strings(raw or b"").get(field, []))
    return found.pop() if len(found) == 1 else None


def duplicate_key(raw: bytes) -> str | None:
    """A key some object gives twice, if any (the Kafka and HTTP inputs refuse those). Call
    after `too_deep`: the slow path recurses."""
    # Parsers keep the last of two equal keys: "order_total" twice would pass with the second.
    # Fast path: with no backslash, every quote delimits a string, and a key given twice
    # leaves fewer strings in orjson's result than in the bytes.
    try:
        if b"\\" not in raw and raw.count(b'"') == 2 * _strings_in(orjson.loads(raw)):
            return None
    except orjson.JSONDecodeError:
        pass  # orjson is stricter than pydantic (lone surrogates): the slow path decides
    try:
        # Numbers are not needed here: skipping their conversion skips int's 4,300-digit limit.
        json.loads(raw, object_pairs_hook=_unique, parse_int=len, parse_float=len)
    except _Duplicate as duplicate:
        return duplicate.key
    except ValueError:
        pass  # not JSON: the schema's parser names the reason
    return None


def _strings_in(value: Any) -> int:
    """Keys and string values at any depth."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            stack += item.values()
        elif type(item) is list:
            stack += item
        elif type(item) is str:
            count += 1
    return count


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return value
