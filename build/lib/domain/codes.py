"""Gift card codes: bearer secrets drawn from a CSPRNG over an unambiguous alphabet."""

from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L: codes are typed by people. 31 symbols, 18 of them: 89 bits (>= 80 required).
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 18
SEPARATORS = "- \t"
# A run of symbols long enough to hold a code, in normalised text (longer runs count whole).
_RUN = re.compile(f"[{ALPHABET}]{{{LENGTH},}}")
# A canonical UUID may hold 18 hex symbols in a row (about one in five does), yet a code can only
# hide in one if all 18 of its symbols are hex: (14/31)**18, about 6e-7 of codes.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def generate_code() -> str:
    """A fresh code, grouped for readability: XXXXXX-XXXXXX-XXXXXX."""
    # One CSPRNG draw below 31**18, written in base 31: uniform like 18 secrets.choice()
    # calls, without 18 system calls (a Kafka purchase batch makes hundreds of codes).
    number = secrets.randbelow(len(ALPHABET) ** LENGTH)
    symbols = []
    for _ in range(LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        symbols.append(ALPHABET[digit])
    raw = "".join(symbols)
    return "-".join(raw[i : i + 6] for i in range(0, LENGTH, 6))


def normalize_code(text: str) -> str:
    """Canonical form used for lookup: upper case, separators and spaces removed."""
    return text.upper().replace("-", "").replace(" ", "").replace("\t", "")


def contains_code(text: str) -> bool:
    """Whether `text`, normalised as a redemption would, holds a run of 18+ code symbols.

    The same normalisation as the lookup, so any text that redeems a card is caught, whatever
    its case or separator runs. The price is false positives: any 18 symbols in a row once
    separators are gone (a long name, a numeric id of 18+ digits without 0 or 1), except a
    value that is exactly a canonical UUID.
    """
    if len(text) < LENGTH and text.isascii():  # the common case ("ß" upper-cases to "SS")
        return False
    return _RUN.search(normalize_code(text)) is not None and not _UUID.fullmatch(text)


def code_spans(text: str) -> list[tuple[int, int]]:
    """Where in `text` the runs `contains_code` finds are, as [start, end) of the original."""
    if not contains_code(text):
        return []
    kept: list[int] = []  # for each character of the normalised text, its index in `text`
    normal = []
    for index, char in enumerate(text):
        for upper in char.upper():  # one character may upper-case to several ("ß" -> "SS")
            if upper not in SEPARATORS:
                normal.append(upper)
                kept.append(index)
    return [(kept[m.start()], kept[m.end() - 1] + 1) for m in _RUN.finditer("".join(normal))]


def last4(code: str) -> str:
    return normalize_code(code)[-4:]
