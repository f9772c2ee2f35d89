"""The docker-compose stack, run for real with podman-compose on the locally built images (3
Kafka nodes, PostgreSQL, 2 `serve` replicas): one purchase and one redemption through it. Run by
`make container-test` (a step of .ci/run), not by `make test`: it builds images."""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from dev.containers import ROOT, build, podman, podman_env

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]
UP_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[str, dict[str, str]]]:
    """The compose project up (images built or reused), taken down with its volumes at the end."""
    build()
    project = f"gcstack{uuid.uuid4().hex[:6]}"
    env = {**podman_env(), "GIFTCARDS_SECRET_KEY": secrets.token_urlsafe(48),
           "POSTGRES_PASSWORD": secrets.token_hex(16), "GIFTCARDS_PARTITIONS": "3"}
    compose = ["podman-compose", "-p", project, "-f", str(ROOT / "docker-compose.yml")]
    subprocess.run([*compose, "up", "-d", "--no-build"], env=env, check=True, cwd=ROOT)
    try:
        yield project, env
    finally:
        for name in ("serve-1", "serve-2"):
            logs = podman("logs", "--tail", "40", f"{project}_{name}_1", check=False, capture=True)
            print(f"--- {name}\n{logs.stdout}{logs.stderr}")
        subprocess.run([*compose, "down", "-v"], env=env, check=False, cwd=ROOT)


def giftcards(project: str, replica: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = podman("exec", f"{project}_{replica}_1", "giftcards", "--json", *args,
                  check=False, capture=True)
    try:
        return done.returncode, orjson.loads(done.stdout)
    except orjson.JSONDecodeError:
        return done.returncode, {"stdout": done.stdout, "stderr": done.stderr[-2000:]}


def until(what: str, probe: Any, timeout: float = UP_TIMEOUT_S) -> Any:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(2)
    raise AssertionError(f"{what} not within {timeout:.0f}s; last: {last}")


def test_r1_r11_compose_stack_sells_and_redeems_a_card_and_publishes_both(
    stack: tuple[str, dict[str, str]],
) -> None:
    project, _ = stack
    # Both replicas up: the schema, the topics (RF 3) and one active relay.
    status = until("an active relay", lambda: (s := giftcards(project, "serve-2", "status"))[0]
                   == 0 and s[1]["relay"]["active_instance"] and s)
    code, bought = giftcards(project, "serve-1", "purchase", "--market", "FR", "--amount", "50",
                             "--payment-method", "card", "--buyer-id", "C1", "--order-id", "O1")
    assert code == 0, bought
    code, redeemed = giftcards(project, "serve-2", "redeem", "--code", bought["code"],
                               "--market", "FR", "--order-id", "O2", "--order-total", "80")
    assert code == 0, redeemed
    code, again = giftcards(project, "serve-1", "redeem", "--code", bought["code"],
                            "--market", "FR", "--order-id", "O3", "--order-total", "80")
    assert code == 1 and again["error"]["code"] == "already_redeemed", again
    # Every stored event relayed to the 3-broker cluster: the relay's lag drops to 0.
    status = until("relay lag 0", lambda: (s := giftcards(project, "serve-1", "status"))[0] == 0
                   and s[1]["relay"]["lag"] == 0 and s[1]["relay"]["last_stored_position"] > 0
                   and s[1], timeout=120)
    assert status["dead_letters"] == 0, status
    code, card = giftcards(project, "serve-2", "show", bought["card_id"])
    assert code == 0 and card["status"] == "redeemed", card
