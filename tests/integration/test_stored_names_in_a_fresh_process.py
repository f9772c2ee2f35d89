"""Every stored event name resolves in a process that only built the service: a checkout
reply is stored under a stable name (`consumers.replies:CheckoutReply.Recorded`) whatever
module defines it now, and a CLI process must read it without having imported that module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.test_fixture_store import STORE

READ_EVERY_STREAM = """
import sys
from pathlib import Path
from uuid import UUID
from tests.fixtures.make_old_store import service_for
service = service_for(Path(sys.argv[1]))
app = service.app
streams = {n.originator_id for n in app.recorder.select_notifications(1, 10**6)}
names = sorted({type(app.repository.get(UUID(str(s)))).__name__ for s in streams})
print(" ".join(names))
service.close()
"""


def test_a_fresh_process_reads_every_stored_stream_of_the_old_store(tmp_path: Path) -> None:
    copy = tmp_path / "old_store.sqlite3"
    shutil.copyfile(STORE, copy)
    done = subprocess.run([sys.executable, "-c", READ_EVERY_STREAM, str(copy)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CheckoutReply" in done.stdout.split()
