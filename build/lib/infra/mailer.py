"""The hook that delivers a new card's code to its buyer (R7), outside every topic and log."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("giftcards.mailer")


class CodeMailer(Protocol):
    """Sends `code` to the buyer behind `buyer_subject`; called after the card is stored."""

    def deliver(self, card_id: str, code: str, buyer_subject: str | None) -> None: ...


class LoggingMailer:
    """Default until an email provider is wired: records that a code was issued, never the code."""

    def deliver(self, card_id: str, code: str, buyer_subject: str | None) -> None:
        log.info("code issued for card %s", card_id)
