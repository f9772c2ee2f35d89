"""Sending an e-mail: SMTP (STARTTLS/TLS, login) from GIFTCARDS_SMTP_URL, else `.eml` files
in a maildir under the data dir. Failures are classified transient (retry) or permanent."""

from __future__ import annotations

import os
import smtplib
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from infra.config import private_directory

TIMEOUT_SECONDS = 10


class TransientSendError(Exception):
    """Try again later: 4xx, connection refused or lost, timeout."""


class PermanentSendError(Exception):
    """Will never succeed as addressed: 5xx, invalid address. `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    """`smtp://[user:password@]host[:port][?starttls=1]` or `smtps://…` (implicit TLS)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("GIFTCARDS_SMTP_URL must be smtp://host[:port] or smtps://host")
        self.tls = parts.scheme == "smtps"
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else ""

    def send(self, message: EmailMessage) -> None:
        try:
            self._send(message)
        except smtplib.SMTPRecipientsRefused as refused:
            codes = [code for code, _ in refused.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise TransientSendError(f"recipient deferred ({codes[0]})") from None
            raise PermanentSendError("address_refused", f"recipient refused ({codes[0]})") from None
        except smtplib.SMTPResponseException as error:
            if 400 <= error.smtp_code < 500:
                raise TransientSendError(f"server answered {error.smtp_code}") from None
            raise PermanentSendError("rejected", f"server answered {error.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as error:
            # Refused, reset, timed out, TLS broken: the server may come back.
            raise TransientSendError(type(error).__name__) from None

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT_SECONDS, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(message)


class MaildirTransport:
    """The embedded default: each message a `.eml` file in `DIR/new`, written whole (tmp, then
    rename), named after its Message-ID so a re-send replaces the same file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        private_directory(directory)
        for sub in ("tmp", "new", "cur"):
            private_directory(directory / sub)

    def send(self, message: EmailMessage) -> None:
        name = "".join(c if c.isalnum() or c in "-." else "_" for c in message["Message-ID"])
        # The tmp name is the writer's own (maildir's rule): two writers of one message must
        # not rename each other's file away.
        tmp = self.directory / "tmp" / f"{name}.{os.getpid()}.{threading.get_ident()}.eml"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a code
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / "new" / f"{name}.eml")


def transport_for(smtp_url: str | None, data_dir: Path) -> Transport:
    return SmtpTransport(smtp_url) if smtp_url else MaildirTransport(data_dir / "mail")
