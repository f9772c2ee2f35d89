"""Dev launcher of a PostgreSQL 15 cluster with automatic failover: one etcd node and two
PostgreSQL nodes under Patroni (Debian's `patroni`, `etcd-server`), synchronous replication."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dev.launcher import run_command
from dev.pg_dev import DATABASE, OS_USER, PASSWORD, SUPERUSER, USER
from dev.services import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_BIN = "/usr/lib/postgresql/15/bin"
# The cluster's internal accounts; they are reached from this machine only.
SUPERUSER_PASSWORD = "patroni-dev-superuser"
REPLICATION_USER, REPLICATION_PASSWORD = "replicator", "patroni-dev-replicator"
START_TIMEOUT_S = 90.0
# Patroni's timing: a crashed primary is failed over at its node's next loop (loop_wait), a
# node whose Patroni died loses the leader key after `ttl` seconds (the DCS rule
# loop_wait + 2 * retry_timeout <= ttl holds).
TTL_S, LOOP_WAIT_S, RETRY_TIMEOUT_S = 12, 1, 5


def _port_base() -> int:
    return int(os.environ.get("PATRONI_DEV_PORT", "15440"))


@dataclass(frozen=True)
class Cluster:
    """Where the cluster lives and listens. Ports from `base`: etcd's client and peer ports,
    then per node its PostgreSQL port and its Patroni REST API port."""

    home: Path
    base: int
    nodes: int = 2
    # synchronous_mode_strict: with no synchronous standby left, writes wait instead of going
    # on unreplicated (see docs/operations.md).
    strict: bool = False
    # False: Patroni's asynchronous replication, to show what a failover then loses.
    synchronous: bool = True
    # fsync on: commits survive a crash of the machine (benchmarks, chaos); off by default.
    durable: bool = False

    @property
    def etcd_port(self) -> int:
        return self.base

    def pg_port(self, node: int) -> int:
        return self.base + 2 + 2 * node

    def rest_port(self, node: int) -> int:
        return self.base + 3 + 2 * node

    def node_dir(self, node: int) -> Path:
        return self.home / f"node{node}"

    def data_dir(self, node: int) -> Path:
        return self.node_dir(node) / "data"

    @property
    def scope(self) -> str:
        return f"giftcards-{self.base}"

    @property
    def url(self) -> str:
        """Every node, and libpq picks the one that accepts writes (the primary)."""
        hosts = ",".join(f"127.0.0.1:{self.pg_port(n)}" for n in range(self.nodes))
        return (f"postgresql://{USER}:{PASSWORD}@{hosts}/{DATABASE}"
                "?target_session_attrs=read-write")

    def node_url(self, node: int) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.pg_port(node)}/{DATABASE}"


def cluster() -> Cluster:
    """The dev cluster, as the environment configures it (PATRONI_DEV_PORT, PATRONI_DEV_HOME)."""
    base = _port_base()
    given = os.environ.get("PATRONI_DEV_HOME")
    if given:
        return Cluster(Path(given).resolve(), base)
    checkout = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:10]
    return Cluster(Path(tempfile.gettempdir()) / f"giftcards-patroni-{checkout}-{base}", base)


def free_base(ports: int = 8) -> int:
    """A first port such that it and the `ports - 1` next ones are free right now."""
    return free_port(ports)


def _server_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, Patroni runs as the `postgres` OS user."""
    return pwd.getpwnam(OS_USER) if os.geteuid() == 0 else None


def _as_server_user(*cmd: str) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _owned_dir(path: Path, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    user = _server_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def _patroni_config(c: Cluster, node: int) -> dict[str, Any]:
    here = c.node_dir(node)
    return {
        "scope": c.scope,
        "name": f"node{node}",
        "restapi": {"listen": f"127.0.0.1:{c.rest_port(node)}",
                    "connect_address": f"127.0.0.1:{c.rest_port(node)}"},
        "etcd3": {"hosts": [f"127.0.0.1:{c.etcd_port}"]},
        "bootstrap": {
            "dcs": {
                "ttl": TTL_S,
                "loop_wait": LOOP_WAIT_S,
                "retry_timeout": RETRY_TIMEOUT_S,
                # A commit is acknowledged once the synchronous standby has it, and only that
                # standby may be promoted: a failover loses no acknowledged commit.
                "synchronous_mode": c.synchronous,
                "synchronous_mode_strict": c.strict,
                # A crashed primary is failed over at once rather than restarted in place.
                "primary_start_timeout": 0,
                "postgresql": {
                    # The old primary rejoins as a standby, rewound to the new timeline.
                    "use_pg_rewind": True,
                    "parameters": {
                        "synchronous_commit": "on",
                        "max_connections": 200,
                        "wal_keep_size": "256MB",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        # A throwaway cluster on one machine: the server process dies in the
                        # tests, never the machine, so the page cache holds what fsync would.
                        # (full_page_writes stays on: pg_rewind requires it.)
                        "fsync": "on" if c.durable else "off",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth-local": "trust"},
                       {"auth-host": "scram-sha-256"}, "no-sync"],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{c.pg_port(node)}",
            "connect_address": f"127.0.0.1:{c.pg_port(node)}",
            "data_dir": str(c.data_dir(node)),
            "bin_dir": os.environ.get("PG_DEV_BIN", PG_BIN),
            "pgpass": str(here / "pgpass"),
            "use_unix_socket": True,
            "authentication": {
                "superuser": {"username": SUPERUSER, "password": SUPERUSER_PASSWORD},
                "replication": {"username": REPLICATION_USER, "password": REPLICATION_PASSWORD},
            },
            "parameters": {"unix_socket_directories": str(here / "run")},
            "pg_hba": [
                "local all all trust",
                f"host replication {REPLICATION_USER} 127.0.0.1/32 scram-sha-256",
                "host all all 127.0.0.1/32 scram-sha-256",
            ],
        },
        "tags": {"nofailover": False, "noloadbalance": False},
    }


def _pids_file(c: Cluster) -> Path:
    return c.home / "pids.json"


def _pids(c: Cluster) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(_pids_file(c).read_text()).items()}
    except (OSError, ValueError):
        return {}


def _save_pids(c: Cluster, pids: dict[str, int]) -> None:
    _pids_file(c).write_text(json.dumps(pids))


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def _spawn(cmd: list[str], log: Path) -> int:
    with open(log, "ab") as out:
        # Its own session: the launcher may exit (`up`) and the cluster runs on.
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   cwd=log.parent)
    return process.pid


def _start_etcd(c: Cluster) -> int:
    data = c.home / "etcd"
    data.mkdir(mode=0o700, exist_ok=True)
    client, peer = f"http://127.0.0.1:{c.etcd_port}", f"http://127.0.0.1:{c.etcd_port + 1}"
    return _spawn([
        "etcd", "--name", "etcd0", "--data-dir", str(data),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"etcd0={peer}", "--initial-cluster-state", "new",
        "--initial-cluster-token", c.scope, "--log-level", "warn", "--logger", "zap",
    ], c.home / "etcd.log")


def start_node(c: Cluster, node: int) -> int:
    """Start node `node`'s Patroni (which starts, or creates, its PostgreSQL); returns its pid."""
    here = c.node_dir(node)
    _owned_dir(here)
    _owned_dir(here / "run", 0o755)
    config = here / "patroni.json"  # JSON is YAML: Patroni reads it as its configuration
    config.write_text(json.dumps(_patroni_config(c, node), indent=1))
    user = _server_user()
    if user is not None:
        os.chown(config, user.pw_uid, user.pw_gid)
    pid = _spawn(_as_server_user("patroni", str(config)), here / "patroni.log")
    pids = _pids(c)
    pids[f"node{node}"] = pid
    _save_pids(c, pids)
    return pid


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as answer:
        return json.loads(answer.read())


def members(c: Cluster) -> list[dict[str, Any]]:
    """Patroni's view of the cluster (name, role, state, lag), from any node's REST API."""
    for node in range(c.nodes):
        with contextlib.suppress(OSError, ValueError):
            return list(_get(f"http://127.0.0.1:{c.rest_port(node)}/cluster")["members"])
    return []


def node_state(c: Cluster, node: int) -> dict[str, Any] | None:
    """What a node's Patroni says of its PostgreSQL now (role, state, timeline), or None."""
    try:
        return dict(_get(f"http://127.0.0.1:{c.rest_port(node)}/patroni"))
    except (OSError, ValueError):
        return None


def leader(c: Cluster) -> int | None:
    """The node holding the leader key whose own Patroni says its PostgreSQL runs as primary
    (the DCS alone may still remember a leader of an earlier run)."""
    for member in members(c):
        if member.get("role") == "leader":
            node = int(str(member["name"]).removeprefix("node"))
            state = node_state(c, node) or {}
            if state.get("state") == "running" and state.get("role") in ("master", "primary"):
                return node
    return None


def healthy(c: Cluster) -> bool:
    """A running primary, every node running, and (in synchronous mode) a synchronous
    standby."""
    if leader(c) is None:
        return False
    if any((node_state(c, n) or {}).get("state") != "running" for n in range(c.nodes)):
        return False
    found = members(c)
    if len(found) < c.nodes or any(m.get("state") not in ("running", "streaming") for m in found):
        return False
    return not c.synchronous or "sync_standby" in [m.get("role") for m in found]


def wait_healthy(c: Cluster, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(c):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Patroni cluster is not healthy after {timeout:.0f} s: "
                               f"{members(c)}\n{log_tails(c)}")
        time.sleep(0.3)


def log_tails(c: Cluster, lines: int = 15) -> str:
    parts = []
    for log in [c.home / "etcd.log", *(c.node_dir(n) / "patroni.log" for n in range(c.nodes))]:
        with contextlib.suppress(OSError):
            parts.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace")
                                                    .splitlines()[-lines:]))
    return "\n".join(parts)


def _ensure_role_and_database(c: Cluster, node: int) -> None:
    socket_dir = c.node_dir(node) / "run"
    with psycopg.connect(host=str(socket_dir), port=c.pg_port(node), user=SUPERUSER,
                         dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(USER), sql.Literal(PASSWORD)))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                        (DATABASE,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(USER)))


def start_cluster(c: Cluster) -> str:
    """Start etcd and every node (creating what is missing); returns the URL once the cluster
    has a primary, every standby streams and the giftcards role and database exist."""
    c.home.mkdir(mode=0o711, parents=True, exist_ok=True)
    if len(str(c.node_dir(0) / "run" / f".s.PGSQL.{c.pg_port(0)}")) > 107:
        raise RuntimeError(f"{c.home} is too deep for a Unix socket path")
    pids = _pids(c)
    if not alive(pids.get("etcd", 0)):
        pids["etcd"] = _start_etcd(c)
        _save_pids(c, pids)
    for node in range(c.nodes):
        if not alive(pids.get(f"node{node}", 0)):
            start_node(c, node)
    wait_healthy(c)
    primary = leader(c)
    assert primary is not None
    _ensure_role_and_database(c, primary)
    return c.url


def restart_postgres(c: Cluster, node: int) -> None:
    """A restart of a node's PostgreSQL in place by its Patroni (no failover): POST /restart."""
    request = urllib.request.Request(f"http://127.0.0.1:{c.rest_port(node)}/restart",
                                     data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()


def postmaster_pid(c: Cluster, node: int) -> int | None:
    try:
        return int((c.data_dir(node) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_postgres(c: Cluster, node: int) -> None:
    """SIGKILL of a node's postmaster and its backends at once (the server dies as with its
    machine; the node's Patroni lives on and sees it)."""
    pid = postmaster_pid(c, node)
    if pid is None or not alive(pid):
        raise RuntimeError(f"node{node} runs no PostgreSQL")
    family = [pid, *_children(pid)]
    for member in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry))
    return found


def stop_cluster(c: Cluster, timeout: float = 30.0) -> None:
    """Patroni stops its PostgreSQL on SIGTERM; then etcd. Anything left is killed."""
    pids = _pids(c)
    nodes = [pid for name, pid in pids.items() if name != "etcd" and alive(pid)]
    for pid in nodes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in nodes) and time.monotonic() < deadline:
        time.sleep(0.1)
    for node in range(c.nodes):  # a postmaster whose Patroni did not stop it in time
        postmaster = postmaster_pid(c, node)
        if postmaster is not None and alive(postmaster):
            for member in [postmaster, *_children(postmaster)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
    for pid in [*nodes, pids.get("etcd", 0)]:
        if pid and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL if pid in nodes else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    _pids_file(c).unlink(missing_ok=True)


def remove_cluster(c: Cluster) -> None:
    stop_cluster(c)
    shutil.rmtree(c.home, ignore_errors=True)


@contextlib.contextmanager
def _locked(c: Cluster) -> Iterator[None]:
    """Serialise up/down across processes."""
    c.home.mkdir(mode=0o711, parents=True, exist_ok=True)
    with open(c.home / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up() -> str:
    c = cluster()
    with _locked(c):
        return start_cluster(c)


def down() -> None:
    c = cluster()
    with _locked(c):
        stop_cluster(c)


def status() -> str | None:
    c = cluster()
    found = members(c)
    if not found:
        return None
    described = ", ".join(f"{m['name']} {m['role']} {m['state']}" for m in found)
    return f"{c.url} ({described})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.patroni_dev", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    return run_command(args.command, up, down, status)


if __name__ == "__main__":
    sys.exit(main())
