"""Domain errors: each refusal of the terms has a stable machine-readable code."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the command; `code` is stable, `message` is for humans."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


def refuse(code: str, message: str) -> DomainError:
    """Build a refusal with the given code (codes are listed in the README)."""
    return DomainError(message, code=code)
