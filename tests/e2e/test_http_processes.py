"""`giftcards api --processes N`: several API processes on one port and one PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from application.apikeys import ApiKeys
from application.commands import PurchaseCard
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET
from tests.e2e.test_http_api import GIFTCARDS, free_port
from tests.integration.child_processes import running

PROCESSES = 2


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def workers(pid: int) -> set[int]:
    """uvicorn's workers: the children that run the app (not multiprocessing's tracker)."""
    return {child for child in children(pid)
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()}


def ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the API did not answer")


@pytest.fixture
def env(tmp_path: Path, postgres_server: str) -> Iterator[dict[str, str]]:
    from dev.services import drop_postgres_database, fresh_postgres_database

    url = fresh_postgres_database(postgres_server)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    yield {**clean, "GIFTCARDS_DATA_DIR": str(tmp_path / "var"), "GIFTCARDS_DATABASE_URL": url,
           "GIFTCARDS_SECRET_KEY": SECRET}
    drop_postgres_database(url)


def test_r10_r11_several_api_processes_share_a_port_and_hold_a_card_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    service = build(load_settings(env))
    key = ApiKeys(service.app).create(name="shop", scopes=["checkout"])["key"]
    cards = [service.app.purchase(PurchaseCard(
        market="FR", amount=5000, payment_method="card", buyer_id="c", order_id=f"p-{n}",
    )) for n in range(2)]
    service.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    parent = subprocess.Popen([GIFTCARDS, "api", "--port", str(port), "--processes",
                               str(PROCESSES)], env=env, stdout=log.open("wb"),
                              stderr=subprocess.STDOUT)
    try:
        ready(url, time.monotonic() + 60)
        assert len(workers(parent.pid)) == PROCESSES
        auth = {"Authorization": f"Bearer {key}"}
        code = cards[0].code

        def authorize(n: int) -> int:
            # A connection each: the kernel deals them out to both processes.
            with httpx.Client(timeout=30) as client:
                return client.post(f"{url}/v1/checkouts/race-{n}/authorize", headers=auth,
                                   json={"code": code, "market": "FR",
                                         "order_total": 3000}).status_code

        # When 50 orders race for one card across the processes: exactly one hold (R10)
        with ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(authorize, range(50)))
        assert (statuses.count(200), statuses.count(409)) == (1, 49), statuses
        winner = f"race-{statuses.index(200)}"

        def lookup(_: int) -> dict[str, Any]:
            with httpx.Client(timeout=30) as client:
                answer = client.post(f"{url}/v1/cards/lookup", headers=auth,
                                     json={"code": code, "market": "FR"})
                assert answer.status_code == 200, answer.text
                return dict(answer.json())

        # Then every process's lookups show the hold, and after the capture the single use
        with ThreadPoolExecutor(8) as pool:
            assert {a["status"] for a in pool.map(lookup, range(16))} == {"held"}
        with httpx.Client(timeout=30) as client:
            captured = client.post(f"{url}/v1/checkouts/{winner}/capture", headers=auth)
        assert captured.status_code == 200, captured.text
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lookup, range(16)))
        assert {(a["status"], a["balance"]) for a in answers} == {("redeemed", 0)}

        # When a worker is killed, the supervisor replaces it and the port keeps answering
        victim = min(workers(parent.pid))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = workers(parent.pid)
            if victim not in alive and len(alive) == PROCESSES:
                break
            time.sleep(0.2)
        assert victim not in workers(parent.pid) and len(workers(parent.pid)) == PROCESSES
        ready(url, time.monotonic() + 60)
        assert lookup(0)["status"] == "redeemed"
        other = lookup_code(url, auth, cards[1].code)
        assert other["status"] == "active"
    finally:
        pids = children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        status = parent.wait(timeout=60)
    # SIGTERM stops the workers with their parent, cleanly
    assert status == 0, log.read_text()
    # (multiprocessing's resource tracker ends once it sees its parent gone: a moment later)
    deadline = time.monotonic() + 10
    while [pid for pid in pids if running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids and not [pid for pid in pids if running(pid)]
    text = log.read_text()
    assert "Traceback" not in text and key not in text and code not in text


def lookup_code(url: str, auth: dict[str, str], code: str) -> dict[str, Any]:
    answer = httpx.post(f"{url}/v1/cards/lookup", headers=auth,
                        json={"code": code, "market": "FR"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_several_api_processes_need_postgresql(tmp_path: Path) -> None:
    env = {**os.environ, "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
           "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'g.sqlite3'}",
           "GIFTCARDS_SECRET_KEY": SECRET}
    done = subprocess.run([GIFTCARDS, "--json", "api", "--port", str(free_port()),
                           "--processes", "2"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 2
    error = orjson.loads(done.stdout)
    assert error["error"]["code"] == "invalid_input" and "PostgreSQL" in error["error"]["message"]
