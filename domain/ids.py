"""Ids are opaque tokens: one alphabet and one length for every id field on every path (P5)."""

from __future__ import annotations

import re

from domain.errors import refuse

MAX_ID = 100
# Visible ASCII (U+0021 to U+007E) except `@`: no space, no control character, no NUL, no
# e-mail address. An id is published in clear and kept for ever; free text has no place there.
ID_ALPHABET = "visible ASCII characters (U+0021 to U+007E) except @"
ID_PATTERN = rf"^[!-?A-~]{{1,{MAX_ID}}}$"
_ID = re.compile(ID_PATTERN)


# A store id (the id the store keeps for a customer first seen since store ids): this prefix and
# 32 random hex digits, an id like any other; a recipient's pseudonym starts with `r-`.
STORE_ID_PREFIX = "s-"
RECIPIENT_PREFIX = "r-"


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None and value[-1] != "\n"


def check_id(field: str, value: str) -> str:
    """`value` if it is an id; else refused `invalid_id`, whatever the path (the value is not
    quoted: it may be personal data)."""
    if not is_id(value):
        raise refuse("invalid_id", f"{field}: an id is 1 to {MAX_ID} {ID_ALPHABET}")
    return value
