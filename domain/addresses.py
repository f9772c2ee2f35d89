"""E-mail addresses: RFC 5322 addr-spec syntax, the one check of every path (HTTP, Kafka, CLI)."""

from __future__ import annotations

import re

from domain.errors import refuse

# RFC 5322 section 3.4.1 without the obsolete forms, comments or folding white space:
# local-part = dot-atom / quoted-string (its white space kept), domain = dot-atom /
# domain-literal.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[ \t\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e\t])*"'
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
ADDR_SPEC = rf"(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|{_LITERAL})"
MAX_LENGTH = 320  # RFC 5321: 64 for the local part, 255 for the domain
_ADDRESS = re.compile(ADDR_SPEC)


def is_address(text: str) -> bool:
    return len(text) <= MAX_LENGTH and _ADDRESS.fullmatch(text) is not None


def check_address(text: str | None, field: str) -> None:
    """Refuses what is not an addr-spec; the message names the field, never the value."""
    if text is not None and not is_address(text):
        raise refuse("invalid_input", f"{field} must be an e-mail address (RFC 5322 addr-spec)")
