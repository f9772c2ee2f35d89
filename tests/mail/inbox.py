"""The test side of the SMTP server subprocess: start, stop, read what it received."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest

from dev.services import free_port

ROOT = Path(__file__).resolve().parents[2]
CODE_LINE = re.compile(r"^(?:Code|Codice|Código): (\S+)$", re.MULTILINE)
CARD_ID = re.compile(r"^<([0-9a-f-]{36})\.(\d+)\.(card|confirmation|notice)@")



class SmtpServer:
    """aiosmtpd in a subprocess on a fixed port, so it can be stopped and started again; with
    `tls` (a certificate and its key), it requires STARTTLS before any mail."""

    def __init__(self, directory: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.tls = tls
        self.url = f"smtp://127.0.0.1:{self.port}" + ("?starttls=1" if tls else "")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ready = self.directory / "ready"
        ready.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.mail.smtp_server", str(self.port), str(self.directory),
             *(str(path) for path in self.tls or ())],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert self.process.poll() is None, "the SMTP server exited"
            assert time.monotonic() < deadline, "the SMTP server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def control(self, text: str) -> None:
        (self.directory / "control").write_text(text)

    def received(self) -> list[EmailMessage]:
        folder = self.directory / "received"
        return [read_eml(path) for path in sorted(folder.glob("*.eml"))] if folder.exists() else []

    def wait_for(self, count: int, timeout: float = 60.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(got := self.received()) < count:
            assert time.monotonic() < deadline, f"received {len(got)} of {count} e-mails"
            time.sleep(0.1)
        return got

    def codes(self) -> dict[str, str]:
        """The code each card's e-mail carries, by card id (a card's re-sends must agree)."""
        found: dict[str, str] = {}
        for message in self.received():
            card_id, _, which = message_parts(message)
            if which == "card":
                code = code_in(message)
                assert found.setdefault(card_id, code) == code, f"two codes for {card_id}"
        return found

    def wait_for_cards(self, count: int, timeout: float = 60.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while len(codes := self.codes()) < count:
            assert time.monotonic() < deadline, f"codes of {len(codes)} of {count} cards"
            time.sleep(0.1)
        return codes


def read_eml(path: Path) -> EmailMessage:
    raw = path.read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def message_parts(message: EmailMessage) -> tuple[str, int, str]:
    found = CARD_ID.match(str(message["Message-ID"]).strip())
    assert found, message["Message-ID"]
    return found.group(1), int(found.group(2)), found.group(3)


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}"
    return cast(str, part.get_content()).replace("\r\n", "\n")  # as SMTP carried it


def code_in(message: EmailMessage) -> str:
    found = CODE_LINE.search(text_of(message, "plain"))
    assert found, "no code line in the card e-mail"
    return found.group(1)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "smtp")
    server.directory.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()
