"""Long-running `giftcards` commands as real subprocesses, killed and restarted by the test."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
STOP_TIMEOUT_S = 60.0


class ServiceProcess:
    """A long-running `giftcards` command (`serve`, `relay`, `consume checkout`, ...) as a real
    subprocess of this venv's script, stdout and stderr appended to `log`; `prefix` runs it
    under a wrapper (`faketime -f -1h`)."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], log: Path, prefix: Sequence[str] = ()
    ) -> None:
        self.args = list(args)
        self.prefix = list(prefix)
        self.env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where the current run's output begins in `log`

    def start(self) -> None:
        assert not self.alive(), "already running"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._log_start = out.tell()
            self.process = subprocess.Popen(
                [*self.prefix, GIFTCARDS, *self.args], env=self.env, stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def freeze(self) -> None:
        """SIGSTOP: the process stops where it is (a paused VM, a long GC), sockets open."""
        assert self.process is not None and self.alive(), "not running"
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: it goes on from where it stopped, unaware of the time gone by."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (finish the batch, commit, close) and return the exit code."""
        assert self.process is not None, "never started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.args} ignored SIGTERM for {timeout:.0f}s:\n{self.log_tail()}"
            ) from None

    def log_text(self, *, current_run: bool = False) -> str:
        """The whole log, or only what the current (last started) run wrote."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as handle:
            handle.seek(self._log_start if current_run else 0)
            return handle.read().decode(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def wait_for_log(self, substring: str, timeout: float = 60.0) -> None:
        """Returns once the current run logged `substring`; fails early if the process died."""
        deadline = time.monotonic() + timeout
        while substring not in self.log_text(current_run=True):
            if not self.alive():
                raise AssertionError(
                    f"{self.args} exited ({self.exit_code()}) before logging {substring!r}:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.args} did not log {substring!r} within {timeout:.0f}s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+ +\w+ +(\S+)")


def our_tracebacks(log: str) -> list[str]:
    """The log records with a traceback that our code logged. kafka-python logs its own, with
    a traceback, when a broker it talks to is killed ("Connection reset by peer"): that is
    the fault the test injects, not a failure of ours."""
    found, logger = [], ""
    for line in log.splitlines():
        if (record := _RECORD.match(line)) is not None:
            logger = record.group(1)
        elif line.startswith("Traceback") and not logger.startswith("kafka."):
            found.append(logger or "(no record)")
    return found
