"""Sending an e-mail: SMTP (STARTTLS/TLS, login) from GIFTCARDS_SMTP_URL, else `.eml` files
in a maildir under the data dir. Failures are classified transient (retry) or permanent."""

from __future__ import annotations

import os
import smtplib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from infra.config import ConfigError, smtp_starttls

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
    """`smtp://[user:password@]host[:port][?starttls=1]` or `smtps://…` (implicit TLS); the
    server's certificate and name are verified against `ca_file` (else the system's CAs)."""

    def __init__(self, url: str, ca_file: Path | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("GIFTCARDS_SMTP_URL must be smtp://host[:port] or smtps://host")
        self.tls = parts.scheme == "smtps"
        self.starttls = smtp_starttls(url)
        self.ca_file = ca_file
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

    def context(self) -> ssl.SSLContext:
        """Certificate and host name always checked (create_default_context's defaults)."""
        cafile = None if self.ca_file is None else str(self.ca_file)
        return ssl.create_default_context(cafile=cafile)

    def check(self) -> None:
        """Connect, TLS, log in, quit: a server that refuses this link (a certificate the CA
        does not vouch for, no STARTTLS, the credentials) raises ConfigError naming the
        setting; one that is away is left to the worker's retries."""
        where = f"{self.host}:{self.port}"
        try:
            with self._connected():
                pass
        except ssl.SSLCertVerificationError as error:
            raise ConfigError(
                f"GIFTCARDS_SMTP_CA_FILE: the mail server's certificate at {where} is not "
                f"trusted ({error.verify_message})"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise ConfigError(
                f"GIFTCARDS_SMTP_URL: the mail server at {where} does not offer STARTTLS"
            ) from None
        except smtplib.SMTPAuthenticationError as error:
            raise ConfigError(
                f"GIFTCARDS_SMTP_URL: the mail server at {where} refused the login "
                f"({error.smtp_code})"
            ) from None
        except (smtplib.SMTPException, OSError):
            pass  # away or busy: deliveries wait for it

    def _send(self, message: EmailMessage) -> None:
        with self._connected() as smtp:
            smtp.send_message(message)

    @contextmanager
    def _connected(self) -> Iterator[smtplib.SMTP]:
        context = self.context()
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
            yield smtp


class MaildirTransport:
    """The embedded default: each message a `.eml` file in `DIR/new`, written whole (tmp, then
    rename), named after its Message-ID so a re-send replaces the same file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True, exist_ok=True)

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


def transport_for(
    smtp_url: str | None, data_dir: Path, ca_file: Path | None = None
) -> Transport:
    return SmtpTransport(smtp_url, ca_file) if smtp_url else MaildirTransport(data_dir / "mail")
