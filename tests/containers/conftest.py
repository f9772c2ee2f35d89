"""The compose stack of tests/containers: started once for the session (images built or
reused), taken down with its volumes at the end; helpers to drive it from this host."""

from __future__ import annotations

import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from dev.containers import ROOT, build, podman, podman_env
from dev.services import free_port

# Three JVMs, two Patroni nodes and two services starting on a shared 2-core machine: minutes.
UP_TIMEOUT_S = 900.0
# (compose project name, the environment it was started with)
Stack = tuple[str, dict[str, str]]
LOGGED = ("certs", "kafka-1", "etcd", "pg-1", "pg-2", "mail", "serve-1", "serve-2")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The compose project up (images built or reused), taken down with its volumes at the end."""
    build()
    project = f"gcstack{uuid.uuid4().hex[:6]}"
    env = {**podman_env(), "GIFTCARDS_SECRET_KEY": secrets.token_urlsafe(48),
           "POSTGRES_PASSWORD": secrets.token_hex(16), "GIFTCARDS_PARTITIONS": "3",
           "GIFTCARDS_API_PORT": str(free_port())}
    compose = ["podman-compose", "-p", project, "-f", str(ROOT / "docker-compose.yml")]
    try:
        # podman-compose 1.0 ignores depends_on's conditions: the certificate step first, to
        # its end, as Docker's `service_completed_successfully` would.
        subprocess.run([*compose, "up", "-d", "--no-build", "certs"], env=env, check=True,
                       cwd=ROOT)
        waited = podman("wait", f"{project}_certs_1", capture=True)
        assert waited.stdout.strip() == "0", podman("logs", f"{project}_certs_1", capture=True)
        subprocess.run([*compose, "up", "-d", "--no-build"], env=env, check=True, cwd=ROOT)
        yield project, env
    finally:
        for name in LOGGED:
            logs = podman("logs", "--tail", "40", f"{project}_{name}_1", check=False, capture=True)
            print(f"--- {name}\n{logs.stdout}{logs.stderr}")
        subprocess.run([*compose, "down", "-v"], env=env, check=False, cwd=ROOT)
        # podman-compose 1.0 leaves the project's network behind.
        podman("network", "rm", "-f", f"{project}_default", check=False, capture=True)



def http(method: str, url: str, body: dict[str, Any] | None = None,
         key: str | None = None) -> tuple[int, dict[str, Any]]:
    """One request to the stack's API from this host; (status, JSON body), (0, {}) if it does
    not answer yet."""
    request = urllib.request.Request(url, method=method,
                                     data=orjson.dumps(body) if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, orjson.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, orjson.loads(refused.read() or b"{}")
    except OSError:
        return 0, {}


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
