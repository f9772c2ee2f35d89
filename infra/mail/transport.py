"""Sending an e-mail: SMTP (STARTTLS/TLS, login) from GIFTCARDS_SMTP_URL, else sealed files
in a maildir under the data dir. Failures are classified transient (retry) or permanent."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import smtplib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from infra.config import ConfigError
from infra.config_links import smtp_starttls
from infra.private_files import private_directory
from infra.vault_keys import ERASED

TIMEOUT_SECONDS = 10


class TransientSendError(Exception):
    """Try again later: 4xx, connection refused or lost, timeout."""


class PermanentSendError(Exception):
    """Will never succeed as addressed: 5xx, invalid address. `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class UncertainSendError(PermanentSendError):
    """The server received the whole message but its answer was lost (timeout, connection cut
    after the final dot): it may have been accepted. Not re-sent automatically, since that is
    how one e-mail arrives many times; customer service decides (`deliveries retry`)."""

    def __init__(self, detail: str) -> None:
        super().__init__("outcome_unknown", detail)


class _Smtp(smtplib.SMTP):
    """Knows whether the whole message went out: a failure after that is uncertain."""

    message_sent = False

    def send(self, s: Any) -> None:  # smtplib's Buffer | str
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.message_sent = True


class _SmtpSsl(smtplib.SMTP_SSL, _Smtp):
    pass


class Transport(Protocol):
    def send(self, message: EmailMessage, owner: str | None = None) -> None:
        """`owner`: the data subject whose e-mail this is (a transport that keeps a copy seals
        it under their key)."""
        ...


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

    def send(self, message: EmailMessage, owner: str | None = None) -> None:
        session: _Smtp | None = None
        try:
            with self._connected() as smtp:
                session = smtp
                smtp.send_message(message)
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
            if session is not None and session.message_sent:
                raise UncertainSendError(
                    f"the server received the message but its answer was lost "
                    f"({type(error).__name__}): it may have been delivered; not re-sent "
                    f"automatically"
                ) from None
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

    @contextmanager
    def _connected(self) -> Iterator[_Smtp]:
        context = self.context()
        smtp: _Smtp
        if self.tls:
            smtp = _SmtpSsl(self.host, self.port, timeout=TIMEOUT_SECONDS, context=context)
        else:
            smtp = _Smtp(self.host, self.port, timeout=TIMEOUT_SECONDS)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password)
            yield smtp


class Sealer(Protocol):
    """The vault as the maildir uses it: seal under a subject's key, open while it lives."""

    def seal_if_live(self, subject_id: str, plaintext: str) -> str | None: ...

    def open(self, subject_id: str, token: str) -> str: ...

    def owner_of(self, token: str) -> str | None:
        """The subject whose live key sealed `token`, or None once erased."""
        ...


class MaildirTransport:
    """The embedded default: each message in `DIR/new`, written whole (tmp, then rename),
    named after its Message-ID so a re-send replaces the same file, and SEALED under its
    owner's key (R21, P2): the file holds a code, an address, names and a message, and an
    erasure must reach it like every other copy. A message without an owner is kept nowhere.
    `read_maildir` opens what is still readable."""

    def __init__(self, directory: Path, vault: Sealer) -> None:
        self.directory = directory
        self.vault = vault
        private_directory(directory)
        for sub in ("tmp", "new", "cur"):
            private_directory(directory / sub)

    def send(self, message: EmailMessage, owner: str | None = None) -> None:
        if owner is None:
            return
        name = "".join(c if c.isalnum() or c in "-." else "_" for c in message["Message-ID"])
        sealed = self.vault.seal_if_live(owner, base64.b64encode(message.as_bytes()).decode())
        if sealed is None:  # erased since the message was opened: no copy under a new key
            return
        # The owner is not written: the sealed text names its key, and the key its subject
        # (an erased customer's id would otherwise stay in clear beside the ciphertext).
        record = json.dumps({"sealed": sealed}).encode()
        # The tmp name is the writer's own (maildir's rule): two writers of one message must
        # not rename each other's file away.
        tmp = self.directory / "tmp" / f"{name}.{os.getpid()}.{threading.get_ident()}.sealed"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / "new" / f"{name}.sealed")


def read_maildir(directory: Path, vault: Sealer) -> list[EmailMessage]:
    """The maildir's messages whose owner's key still exists, oldest first."""
    found = []
    paths = sorted((directory / "new").glob("*.sealed"), key=lambda path: path.stat().st_mtime)
    for path in paths:
        record = json.loads(path.read_bytes())
        owner = record.get("owner") or vault.owner_of(record["sealed"])  # older files: named
        clear = vault.open(owner, record["sealed"]) if owner is not None else ERASED
        if clear == ERASED:
            continue
        message = email.message_from_bytes(base64.b64decode(clear), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def transport_for(
    smtp_url: str | None, data_dir: Path, vault: Sealer, ca_file: Path | None = None
) -> Transport:
    if smtp_url:
        return SmtpTransport(smtp_url, ca_file)
    return MaildirTransport(data_dir / "mail", vault)
