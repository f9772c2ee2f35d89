"""Private services and processes for fault tests: started, killed and restarted by the test
itself.

Import everything from here: ServiceProcess (processes.py), the load helpers (load.py) and the
end check (consistency.py) live beside this module and are re-exported."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from dev import kafka_dev, pg_dev
from dev.services import free_port
from dev.tls_dev import ServerCert
from tests.faults.consistency import (
    assert_consistent,
    consistency_problems,
    double_redemptions,
    duplicate_evidence,
    event_log_problems,
    kcat_records,
    reply_problems,
    view_problems,
)
from tests.faults.load import PurchaseLoop, produce_checkout_load, purchase_codes
from tests.faults.processes import GIFTCARDS, STOP_TIMEOUT_S, ServiceProcess, our_tracebacks

__all__ = [
    "GIFTCARDS",
    "PrivateKafka",
    "PrivateKafkaCluster",
    "PrivatePostgres",
    "PurchaseLoop",
    "ServiceProcess",
    "assert_consistent",
    "consistency_problems",
    "double_redemptions",
    "duplicate_evidence",
    "event_log_problems",
    "free_port",
    "kcat_records",
    "our_tracebacks",
    "produce_checkout_load",
    "purchase_codes",
    "reply_problems",
    "view_problems",
]





def _wait_dead(alive: Any, what: str, timeout: float = STOP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} still alive after {timeout:.0f}s")
        time.sleep(0.05)


class _Managed:
    """Context manager that always ends the service on exit, whatever the test did."""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()  # a half-started service is ended too
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PrivateKafka(_Managed):
    """A single KRaft broker of the project's Kafka distribution (dev.kafka_dev), its config,
    data and logs under `home`, listening on the same free loopback ports across restarts."""

    def __init__(
        self, home: Path, port: int | None = None,
        security: kafka_dev.BrokerSecurity | None = None,
    ) -> None:
        self.home = home
        # The controller listens on port + 1 (kafka_dev's layout).
        self.port = port if port is not None else free_port(consecutive=2)
        self.pid: int | None = None
        self.security = security  # SASL_SSL only on the client listener

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Returns once the broker answers; the log dirs of an earlier start are kept."""
        assert self.pid is None or not kafka_dev.alive(self.pid), "broker already running"
        self.home.mkdir(parents=True, exist_ok=True)
        kafka_dev.ensure_jars()
        self.pid = kafka_dev.launch_broker(self.port, self.home, self.security)

    def alive(self) -> bool:
        return self.pid is not None and kafka_dev.alive(self.pid)

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, no flush; returns once every thread is gone."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: a controlled shutdown; returns once the broker has exited."""
        self._signal(signal.SIGTERM)

    def restart(self, *, kill: bool = False) -> None:
        (self.kill if kill else self.stop)()
        self.start()

    def close(self) -> None:
        self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return kafka_dev.log_tail(lines, at=self.home)

    def _signal(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is None or not kafka_dev.alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        _wait_dead(lambda: kafka_dev.alive(pid), f"Kafka broker {pid}")


class PrivateKafkaCluster(_Managed):
    """Three KRaft nodes of the project's Kafka distribution (dev.kafka_dev.Cluster) under
    `home`: topics at replication factor 3, min.insync.replicas 2, no unclean election. Each
    node can be killed and restarted on its own ports while the others serve."""

    def __init__(self, home: Path, brokers: int = 3) -> None:
        self.cluster = kafka_dev.Cluster(home, free_port(consecutive=2 * brokers), brokers)
        self.pids: dict[int, int] = {}

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def nodes(self) -> range:
        return self.cluster.nodes

    def start(self) -> None:
        kafka_dev.ensure_jars()
        self.pids = kafka_dev.launch_cluster(self.cluster)

    def alive(self, node: int) -> bool:
        return node in self.pids and kafka_dev.alive(self.pids[node])

    def kill(self, node: int) -> None:
        """SIGKILL of one node: no controlled shutdown; returns once every thread is gone."""
        self._signal(node, signal.SIGKILL)

    def stop(self, node: int) -> None:
        self._signal(node, signal.SIGTERM)

    def start_node(self, node: int) -> None:
        assert not self.alive(node), f"node {node} already running"
        self.pids[node] = kafka_dev.launch_node(self.cluster, node)

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The node id leading `topic`'s partition now (from the cluster's metadata)."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="harness-leader")
        try:
            (described,) = admin.describe_topics([topic])
        finally:
            admin.close()
        return int(next(p["leader_id"] for p in described["partitions"]
                        if p["partition_index"] == partition))

    def close(self) -> None:
        for node in list(self.pids):
            self.kill(node)

    def log_tail(self, node: int, lines: int = 40) -> str:
        return kafka_dev.log_tail(lines, at=self.cluster.home(node))

    def _signal(self, node: int, sig: signal.Signals) -> None:
        pid = self.pids.get(node)
        if pid is None or not kafka_dev.alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        _wait_dead(lambda: kafka_dev.alive(pid), f"Kafka node {node} ({pid})")


class PrivatePostgres(_Managed):
    """A PostgreSQL 15 cluster of its own (infra.pg_dev) on a free loopback port.

    Its home is a fresh directory under the system temp dir, which the `postgres` OS user can
    reach (a pytest tmp_path may not be); it is removed on close."""

    def __init__(self, port: int | None = None, tls: ServerCert | None = None) -> None:
        home = Path(tempfile.mkdtemp(prefix="gc-pgf-", dir=tempfile.gettempdir()))
        home.chmod(0o755)
        port = port if port is not None else free_port()
        # fsync off for speed (the machine does not crash), synchronous_commit on (the server
        # does): what a client saw committed must still be there after the restart.
        self.cluster = pg_dev.Cluster(home, port, crash_safe=True, tls=tls)

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def home(self) -> Path:
        return self.cluster.home

    def start(self) -> None:
        """initdb on first start; returns once it accepts the giftcards role."""
        pg_dev.start_cluster(self.cluster)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def alive(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and kafka_dev.alive(pid)

    def stop(self) -> None:
        """A crash as clients see it: `pg_ctl stop -m immediate` (no checkpoint), then wait."""
        pg_dev.stop_cluster(self.cluster, mode="immediate")

    def kill(self) -> None:
        """SIGKILL of the postmaster and all its backends (a lone postmaster kill would leave
        backends holding the shared memory, and the restart would refuse to start)."""
        pid = self.postmaster_pid()
        if pid is None or not kafka_dev.alive(pid):
            return
        family = [pid, *_children(pid)]
        for member in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
        for member in family:
            _wait_dead(lambda m=member: kafka_dev.alive(m), f"PostgreSQL process {member}")
        # A dead postmaster may linger as an unreaped zombie, which pg_ctl and the next
        # postmaster would take for a running server: its lock files go, as after a reboot.
        (self.cluster.data_dir / "postmaster.pid").unlink(missing_ok=True)
        (self.cluster.socket_dir / f".s.PGSQL.{self.cluster.port}.lock").unlink(missing_ok=True)

    def restart(self, *, kill: bool = False) -> None:
        (self.kill if kill else self.stop)()
        self.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry))
    return found
