"""The compose stack's database survives its primary: the primary's container killed (SIGKILL,
as when its machine dies), Patroni promotes the synchronous standby, libpq's multi-host URL
finds it, and a card bought before the kill is redeemed once after it; the killed node comes
back as the new primary's synchronous standby (pg_rewind)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson
import pytest

from dev.containers import podman
from tests.containers.conftest import Stack, giftcards, until

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]
NODES = ("pg-1", "pg-2")
# What a process started during the failover may meet before it writes: no server accepting
# writes yet (exit 3), or a primary whose standby is not back yet, which production refuses to
# write to (exit 2).
WAITED_OUT = {3: "database_unavailable", 2: "asynchronous_replication_refused"}


def roles(project: str) -> dict[str, str]:
    """Patroni's members as a running node tells them: name -> role ("Leader", "Sync Standby",
    "Replica"); {} when no node answers."""
    for node in NODES:
        # patronictl waits for the DCS without end: bounded.
        listed = podman("exec", f"{project}_{node}_1", "timeout", "10", "patronictl", "-c",
                        "/etc/patroni/patroni.yml", "list", "-f", "json",
                        check=False, capture=True)
        if listed.returncode == 0:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return {str(m["Member"]): str(m["Role"]) for m in orjson.loads(listed.stdout)
                        if m.get("State") in ("running", "streaming")}
    return {}


def led_by(project: str, leader: str) -> dict[str, str] | None:
    """The cluster when `leader` leads and the other node is its synchronous standby."""
    found = roles(project)
    wanted = {n: ("Leader" if n == leader else "Sync Standby") for n in NODES}
    return found if found == wanted else None


def test_r1_compose_stack_redeems_once_after_its_primary_database_container_is_killed(
    stack: Stack,
) -> None:
    project, _ = stack
    until("an active relay", lambda: (s := giftcards(project, "serve-1", "status"))[0] == 0
          and s[1]["relay"]["active_instance"] and s)
    found = until("a leader and a synchronous standby",
                  lambda: next((r for n in NODES if (r := led_by(project, n))), None),
                  timeout=300)
    primary = next(node for node, role in found.items() if role == "Leader")
    standby = next(node for node in NODES if node != primary)
    code, bought = giftcards(project, "serve-1", "purchase", "--market", "FR", "--amount", "30",
                             "--payment-method", "card", "--buyer-id", "F1",
                             "--order-id", "F1")
    assert code == 0, bought

    podman("kill", f"{project}_{primary}_1")
    killed_at = time.monotonic()
    until(f"{standby} promoted", lambda: roles(project).get(standby) == "Leader", timeout=120)
    promoted_s = time.monotonic() - killed_at
    # The machine comes back: its Patroni rewinds it and follows the new primary.
    podman("start", f"{project}_{primary}_1")
    until(f"{primary} back as synchronous standby", lambda: led_by(project, standby),
          timeout=300)

    def redeemed() -> dict[str, Any] | None:
        code, answer = giftcards(project, "serve-2", "redeem", "--code", bought["code"],
                                 "--market", "FR", "--order-id", "F2", "--order-total", "40")
        if code in WAITED_OUT and answer.get("error", {}).get("code") == WAITED_OUT[code]:
            return None
        assert code == 0, (code, answer)
        return answer

    until("a redemption on the new primary", redeemed, timeout=120)
    code, again = giftcards(project, "serve-1", "redeem", "--code", bought["code"],
                            "--market", "FR", "--order-id", "F3", "--order-total", "40")
    assert code == 1 and again["error"]["code"] == "already_redeemed", again
    code, card = giftcards(project, "serve-1", "show", bought["card_id"])
    assert code == 0 and card["status"] == "redeemed", card
    # The running replicas went on against the new primary: everything stored is relayed,
    # nothing dead-lettered.
    status = until("relay lag 0 on the new primary",
                   lambda: (s := giftcards(project, "serve-2", "status"))[0] == 0
                   and s[1]["relay"]["lag"] == 0 and s[1], timeout=180)
    assert status["dead_letters"] == 0, status
    print(f"{standby} promoted {promoted_s:.1f} s after {primary} was killed")
