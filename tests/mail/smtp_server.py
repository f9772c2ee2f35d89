"""A real SMTP server (aiosmtpd) for the delivery tests, run as a subprocess:
`python -m tests.mail.smtp_server PORT DIR [CERT KEY]` (with a certificate: STARTTLS required
before any mail). Every accepted message is written whole to
DIR/received/N.eml before the reply; DIR/control holds how the next messages are answered:
`defer N CODE` answers CODE (421, 451) to the next N messages, `reject N` answers 554 to the
next N messages (a permanent failure), `delay SECONDS` waits before each 250 (a window for
SIGKILL between send and record). Recipients starting `bounce` get 550.
It listens on loopback, or on SMTP_SERVER_HOST (the compose stack's `mail` container: 0.0.0.0)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "received").mkdir(parents=True, exist_ok=True)
        self.control = directory / "control"
        start = len(list((directory / "received").iterdir()))
        self.numbers = itertools.count(start)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        words = self.control.read_text().split() if self.control.exists() else []
        if words[:1] == ["defer"] and int(words[1]) > 0:
            self.control.write_text(f"defer {int(words[1]) - 1} {words[2]}")
            return f"{words[2]} 4.3.0 try again later"
        if words[:1] == ["reject"] and int(words[1]) > 0:
            self.control.write_text(f"reject {int(words[1]) - 1}")
            return "554 5.6.0 message rejected"
        number = next(self.numbers)
        path = self.directory / "received" / f"{number:06d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        os.replace(tmp, path)
        if words[:1] == ["delay"]:
            await asyncio.sleep(float(words[1]))
        return "250 OK queued"


def main() -> None:
    port, directory = int(sys.argv[1]), Path(sys.argv[2])
    tls: dict[str, Any] = {}
    if len(sys.argv) == 5:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
        tls = {"tls_context": context, "require_starttls": True}
    host = os.environ.get("SMTP_SERVER_HOST", "127.0.0.1")
    controller = Controller(Recorder(directory), hostname=host, port=port, **tls)
    controller.start()
    # As a container's PID 1 (the compose stack's `mail`), SIGTERM does nothing unless handled.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    (directory / "ready").write_text(str(os.getpid()))
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
