"""Test plumbing for helper processes: which a process spawned, and whether one still runs."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


def spawned(parent: int) -> list[int]:
    """The processes `parent` started with multiprocessing's spawn (not its resource
    tracker)."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(parent)],
                         capture_output=True, text=True, check=False).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


def running(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def helpers_end_with(parent: subprocess.Popen[str], said: str, helper: str) -> None:
    """Once `parent` printed the line `said`, SIGKILLs it: every process it spawned must end
    on its own within 10 s."""
    try:
        assert parent.stdout is not None and parent.stdout.readline() == said + "\n"
        helpers = spawned(parent.pid)
        assert helpers, f"no {helper} process was spawned"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while any(running(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(running(p) for p in helpers), f"a {helper} outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()
