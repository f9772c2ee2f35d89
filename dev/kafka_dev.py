"""Dev launcher that owns a local Apache Kafka: one KRaft broker (combined mode) for the quick
suite, or a replicated cluster of several (`up --brokers 3`) for scale-out and fault tests."""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka.errors import KafkaError

from dev import tls_dev
from dev.launcher import run_command
from infra.config import KafkaLink, KafkaSecurity
from infra.kafka import clients

KAFKA_VERSION = "4.3.1"
# Kafka 4.3.1's own modules are built against log4j 2.25.4; matching it avoids a mixed classpath.
LOG4J_VERSION = "2.25.4"
# Kafka's pom still declares slf4j-api 1.7.x, but log4j-slf4j2-impl is an SLF4J 2 provider:
# with 1.7 on the classpath the broker would silently log nowhere.
SLF4J_VERSION = "2.0.17"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
ARTIFACTS = (
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J_VERSION),
    ("org.slf4j", "slf4j-api", SLF4J_VERSION),
)

DEFAULT_PORT = 19092
TLS_PORT = 19292  # `up --tls`: the SASL_SSL broker beside the plaintext one
DEV_USER = "giftcards"
CLUSTER_PORT = 19192  # up to 19197 for 3 nodes
HEAP = "512m"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(os.environ.get("KAFKA_DEV_HOME", REPO_ROOT / ".cache" / "kafka")).resolve()


def _lib_dir() -> Path:
    return home() / "lib"


def _data_dir(at: Path | None = None) -> Path:
    return (at or home()) / "data"


def _config_file(at: Path | None = None) -> Path:
    return (at or home()) / "config" / "server.properties"


def _log4j_file(at: Path | None = None) -> Path:
    return (at or home()) / "config" / "log4j2.properties"


def _logs_dir(at: Path | None = None) -> Path:
    return (at or home()) / "logs"


def _pid_file(at: Path | None = None) -> Path:
    return (at or home()) / "kafka.pid"


def _port_file(at: Path | None = None) -> Path:
    # Port the storage was formatted for, which is also the port a running broker listens on.
    return _data_dir(at) / "dev-port"


def _bootstrap(port: int) -> str:
    return f"127.0.0.1:{port}"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise up/down across processes: concurrent callers never fetch, format or start twice."""
    home().mkdir(parents=True, exist_ok=True)
    with open(home() / "kafka.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise RuntimeError(
            "Java 17+ is required to run the dev Kafka broker (set JAVA_HOME or put java on PATH)"
        )
    return java


def _classpath() -> str:
    # A trailing /* is expanded by the JVM itself to every jar in the directory.
    return f"{_lib_dir()}/*"


def _pom() -> str:
    deps = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in ARTIFACTS
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.dev</groupId>
  <artifactId>kafka-dev-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _fetch_jars() -> None:
    """Resolve the broker's runtime classpath with Maven, once per set of ARTIFACTS."""
    lib = _lib_dir()
    marker = lib / ".fetched"
    wanted = "\n".join(":".join(a) for a in ARTIFACTS) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is required to download the dev Kafka broker's jars")
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="kafka-dev-pom-") as tmp:
        (Path(tmp) / "pom.xml").write_text(_pom())
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"Maven could not fetch the Kafka jars:\n{result.stdout}\n{result.stderr}"
        )
    (staging / ".fetched").write_text(wanted)
    # Swap in the complete directory only at the end: an interrupted download never looks complete.
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)


@dataclass(frozen=True)
class BrokerSecurity:
    """The client listener over SASL_SSL: TLS with `keystore` (PKCS12, signed by `ca_file`),
    SCRAM-SHA-512 users created at format time; the broker talks to itself as `broker`."""

    ca_file: Path
    keystore: Path
    keystore_password: str
    users: tuple[tuple[str, str], ...]  # (name, password) of the clients
    broker_password: str

    def link(self, bootstrap: str, user: str) -> KafkaLink:
        password = dict(self.users)[user]
        return KafkaLink(bootstrap=bootstrap, security=KafkaSecurity(
            protocol="SASL_SSL", username=user, password=password, ca_file=self.ca_file,
        ))

    def probe_link(self, bootstrap: str) -> KafkaLink:
        return KafkaLink(bootstrap=bootstrap, security=KafkaSecurity(
            protocol="SASL_SSL", username="broker", password=self.broker_password,
            ca_file=self.ca_file,
        ))

    def listener(self, port: int) -> str:
        return f"""listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}
advertised.listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
  org.apache.kafka.common.security.scram.ScramLoginModule required \
  username="broker" password="{self.broker_password}";
ssl.keystore.type=PKCS12
ssl.keystore.location={self.keystore}
ssl.keystore.password={self.keystore_password}
ssl.truststore.type=PEM
ssl.truststore.location={self.ca_file}
ssl.endpoint.identification.algorithm=https
"""

    def scram_arguments(self) -> list[str]:
        users = [("broker", self.broker_password), *self.users]
        return [arg for name, password in users for arg in (
            "--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"
        )]


def _write_config(
    port: int, at: Path | None = None, cluster: Cluster | None = None,
    security: BrokerSecurity | None = None,
) -> None:
    controller_port = port + 1
    config = _config_file(at)
    config.parent.mkdir(parents=True, exist_ok=True)
    if cluster is None:
        node = """process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
"""
        replication = """# A single broker can only ever hold one replica of the internal topics.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
"""
    else:
        node = f"""process.roles=broker,controller
node.id={cluster.node_id(port)}
controller.quorum.voters={cluster.voters}
"""
        # Every replica of every topic on all brokers; a write is acknowledged once two hold
        # it; a replica that missed writes never becomes leader (the write would be lost).
        rf, isr = cluster.replication_factor, cluster.min_insync
        replication = f"""offsets.topic.replication.factor={rf}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
default.replication.factor={rf}
min.insync.replicas={isr}
unclean.leader.election.enable=false
# A killed broker's partitions get new leaders ~4 s after its last heartbeat (default 9 s).
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
"""
    listeners = security.listener(port) if security else f"""listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""
    logs = _data_dir(at) / "kraft-combined-logs"
    config.write_text(
        f"""# Generated by dev/kafka_dev.py; rewritten on every start.
{node.format(controller_port=controller_port)}{listeners}log.dirs={logs}
num.partitions=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
{replication}# Fewer internal partitions than the default 50 makes the first consumer group and
# first transaction noticeably faster on a small machine; semantics are unchanged.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
# The cleaner's default 128 MiB dedupe buffer would take a quarter of the small heap.
log.cleaner.dedupe.buffer.size=33554432
"""
    )
    _log4j_file(at).write_text(
        f"""# Generated by dev/kafka_dev.py: broker logs go to a size-capped file.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {_logs_dir(at) / "server.log"}
appender.file.filePattern = {_logs_dir(at) / "server.log.%i"}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""
    )


def _java_command(main_class: str, *args: str, at: Path | None = None) -> list[str]:
    return [
        _java(),
        f"-Xmx{HEAP}",
        f"-Dlog4j2.configurationFile={_log4j_file(at)}",
        "-cp",
        _classpath(),
        main_class,
        *args,
    ]


def _random_cluster_id() -> str:
    # Same encoding as Kafka's Uuid.toString (URL-safe base64, no padding); a leading '-'
    # would be parsed as a command-line flag, which Kafka's own generator also avoids.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(
    port: int, at: Path | None = None, cluster: Cluster | None = None,
    security: BrokerSecurity | None = None,
) -> None:
    """Format the KRaft metadata log once per port.

    The formatted log records the controller's voter endpoint, so after a port change it is
    stale: this throwaway broker then simply starts from empty storage. A cluster's nodes share
    its id and its static voter set (no --standalone)."""
    port_file = _port_file(at)
    if port_file.exists() and port_file.read_text().strip() == str(port):
        return
    shutil.rmtree(_data_dir(at), ignore_errors=True)
    _data_dir(at).mkdir(parents=True)
    # --standalone makes this node the sole voter of a dynamic quorum (KIP-853), which is
    # what controller.quorum.bootstrap.servers expects; the cluster id is fixed at format time.
    how = ["--standalone", "-t", _random_cluster_id()] if cluster is None else [
        "-t", cluster.cluster_id
    ]
    result = subprocess.run(
        _java_command(
            "kafka.tools.StorageTool", "format", *how, "-c", str(_config_file(at)),
            # SCRAM users are records of the metadata log: created with it, by Kafka's own tool.
            *(security.scram_arguments() if security else []), at=at,
        ),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kafka StorageTool format failed:\n{result.stdout}\n{result.stderr}")
    port_file.write_text(f"{port}\n")


def _is_broker(pid: int, at: Path | None = None) -> bool:
    """True if pid is a broker started from this home (not a stale pid file or a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(_config_file(at)).encode() in cmdline


def _alive(pid: int) -> bool:
    """True while any thread of pid still runs.

    The JVM's main thread exits first on shutdown, which blanks /proc/<pid>/cmdline while the
    broker still holds its ports; and once every thread is a zombie the process is dead even
    if nobody has reaped it yet. So liveness is judged per thread, not by cmdline or kill(0).
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            # The state letter follows the parenthesised command name, which may itself contain ')'.
            if stat[stat.rindex(")") + 2] not in "ZX":
                return True
    return False


def _running_pid(at: Path | None = None) -> int | None:
    try:
        pid = int(_pid_file(at).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_broker(pid, at) else None


def _running_port() -> int:
    return int(_port_file().read_text().strip())


def _launch(at: Path | None = None) -> int:
    """Start the broker fully detached and return its pid.

    The shell backgrounds java and exits, so the broker is re-parented away from us: it
    outlives this process and never lingers as our zombie or trips Popen's ResourceWarning.
    """
    _logs_dir(at).mkdir(parents=True, exist_ok=True)
    stdout_log = _logs_dir(at) / "kafka.out"
    launcher = subprocess.run(
        [
            "/bin/sh",
            "-c",
            'log="$1"; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!',
            "sh",
            str(stdout_log),
            *_java_command("kafka.Kafka", str(_config_file(at)), at=at),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=at or home(),
        start_new_session=True,
    )
    return int(launcher.stdout.strip())


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _answers(bootstrap: str, security: BrokerSecurity | None = None) -> bool:
    link = security.probe_link(bootstrap) if security else bootstrap
    try:
        admin = clients.admin(link, client_id="kafka-dev-probe", request_timeout_ms=5000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def log_tail(lines: int = 40, at: Path | None = None) -> str:
    tails = []
    for log in (_logs_dir(at) / "kafka.out", _logs_dir(at) / "server.log"):
        if log.exists():
            tails.append(
                f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            )
    return "\n".join(tails)


def _wait_ready(
    pid: int, port: int, at: Path | None = None, security: BrokerSecurity | None = None
) -> None:
    bootstrap = _bootstrap(port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise RuntimeError(f"Kafka broker exited during startup.\n{log_tail(at=at)}")
        # Probe the socket first: kafka-python logs every refused connection loudly.
        if _port_open(port) and _answers(bootstrap, security):
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"Kafka broker did not answer on {bootstrap} within {START_TIMEOUT_S:.0f}s.\n"
        f"{log_tail(at=at)}"
    )


def up(port: int = DEFAULT_PORT) -> str:
    """Ensure the dev broker is running on port and return its bootstrap address."""
    with _locked():
        pid = _running_pid()
        if pid is not None:
            running = _running_port()
            if running != port:
                raise RuntimeError(
                    f"dev Kafka is already running on port {running}; run `down` first to move it"
                )
            # Still wait: another process may have started it and died before it was ready.
            _wait_ready(pid, port)
            return _bootstrap(port)
        if _port_open(port) and _answers(_bootstrap(port)):
            # Another checkout's dev broker (CI clones this repository next to a working copy):
            # share it; every test and bench run uses topics under its own prefix.
            print(f"using the Kafka broker already answering on port {port}", file=sys.stderr)
            return _bootstrap(port)
        if _port_open(port) or _port_open(port + 1):
            raise RuntimeError(
                f"port {port} or {port + 1} is already taken by something other than dev Kafka"
            )
        _fetch_jars()
        launch_broker(port)
        return _bootstrap(port)


def launch_broker(port: int, at: Path | None = None, security: BrokerSecurity | None = None) -> int:
    """Start a broker whose config, data and logs live under `at` (default: the dev home) and
    return its pid once it answers. Storage formatted earlier for this port is kept, so a
    restarted broker finds its topics again. The jars must be there (`ensure_jars`). With
    `security`, its client listener is SASL_SSL only."""
    _write_config(port, at, security=security)
    _format_storage(port, at, security=security)
    pid = _launch(at)
    _pid_file(at).write_text(f"{pid}\n")
    try:
        _wait_ready(pid, port, at, security)
    except RuntimeError:
        _stop(pid, at)
        raise
    return pid


@dataclass(frozen=True)
class Cluster:
    """`brokers` KRaft nodes (each broker and controller) on loopback under `root`: node i
    (from 1) listens on `port + 2(i-1)` and its controller on the next port."""

    root: Path
    port: int
    brokers: int = 3

    @property
    def replication_factor(self) -> int:
        return min(self.brokers, 3)

    @property
    def min_insync(self) -> int:
        return max(1, self.replication_factor - 1)

    def client_port(self, node: int) -> int:
        return self.port + 2 * (node - 1)

    def node_id(self, client_port: int) -> int:
        return (client_port - self.port) // 2 + 1

    def home(self, node: int) -> Path:
        return self.root / f"node-{node}"

    @property
    def nodes(self) -> range:
        return range(1, self.brokers + 1)

    @property
    def bootstrap(self) -> str:
        return ",".join(_bootstrap(self.client_port(n)) for n in self.nodes)

    @property
    def voters(self) -> str:
        return ",".join(f"{n}@127.0.0.1:{self.client_port(n) + 1}" for n in self.nodes)

    @property
    def cluster_id(self) -> str:
        path = self.root / "cluster-id"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(_random_cluster_id())
        return path.read_text().strip()


def launch_cluster(cluster: Cluster) -> dict[int, int]:
    """Start every node of `cluster` (none may be running) and return {node: pid} once each
    answers: the nodes start together, since no controller is elected before a majority is up."""
    pids: dict[int, int] = {}
    try:
        for node in cluster.nodes:
            pids[node] = _start_node(cluster, node)
        for node, pid in pids.items():
            _wait_ready(pid, cluster.client_port(node), cluster.home(node))
    except RuntimeError:
        for node, pid in pids.items():
            _stop(pid, cluster.home(node))
        raise
    return pids


def launch_node(cluster: Cluster, node: int) -> int:
    """(Re)start one node of a running cluster; its pid once it answers."""
    pid = _start_node(cluster, node)
    try:
        _wait_ready(pid, cluster.client_port(node), cluster.home(node))
    except RuntimeError:
        _stop(pid, cluster.home(node))
        raise
    return pid


def _start_node(cluster: Cluster, node: int) -> int:
    at, port = cluster.home(node), cluster.client_port(node)
    _write_config(port, at, cluster)
    _format_storage(port, at, cluster)
    pid = _launch(at)
    _pid_file(at).write_text(f"{pid}\n")
    return pid


def ensure_jars() -> None:
    """Fetch the broker's jars into the dev home unless they are there (shared by every broker)."""
    with _locked():
        _fetch_jars()


def alive(pid: int) -> bool:
    """Public name of the per-thread liveness check, for callers that kill brokers themselves."""
    return _alive(pid)


def _stop(pid: int, at: Path | None = None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    _pid_file(at).unlink(missing_ok=True)


def dev_cluster(brokers: int, port: int = CLUSTER_PORT) -> Cluster:
    """The dev cluster's layout: beside the single broker, under the dev home."""
    return Cluster(home() / f"cluster-{brokers}", port, brokers)


def up_cluster(brokers: int, port: int = CLUSTER_PORT) -> str:
    """Ensure the dev cluster of `brokers` nodes runs (starting the missing nodes) and return
    its bootstrap list. Shared like the single broker: tests use topic prefixes of their own."""
    cluster = dev_cluster(brokers, port)
    with _locked():
        running = {n: pid for n in cluster.nodes if (pid := _running_pid(cluster.home(n)))}
        if not running:
            if any(_port_open(cluster.client_port(n)) for n in cluster.nodes):
                if _answers(cluster.bootstrap):
                    print(f"using the Kafka cluster already answering on {cluster.bootstrap}",
                          file=sys.stderr)
                    return cluster.bootstrap
                raise RuntimeError(f"ports from {port} are taken by something other than dev Kafka")
            _fetch_jars()
            launch_cluster(cluster)
            return cluster.bootstrap
        for node in cluster.nodes:
            if node in running:
                _wait_ready(running[node], cluster.client_port(node), cluster.home(node))
            else:
                launch_node(cluster, node)
        return cluster.bootstrap


def down_cluster(brokers: int, port: int = CLUSTER_PORT) -> None:
    cluster = dev_cluster(brokers, port)
    with _locked():
        for node in cluster.nodes:
            pid = _running_pid(cluster.home(node))
            if pid is not None:
                _stop(pid, cluster.home(node))


def status_cluster(brokers: int, port: int = CLUSTER_PORT) -> str | None:
    cluster = dev_cluster(brokers, port)
    running = [n for n in cluster.nodes if _running_pid(cluster.home(n)) is not None]
    if not running:
        return None
    return ",".join(_bootstrap(cluster.client_port(n)) for n in running) + (
        "" if len(running) == cluster.brokers else f" ({len(running)} of {cluster.brokers} nodes)"
    )


def _tls_home() -> Path:
    return home() / "tls-broker"


def dev_security() -> BrokerSecurity:
    """The SASL_SSL dev broker's certificate (signed by the dev CA, dev/tls_dev.py) and its
    SCRAM users: `giftcards` for the service, `broker` for itself; passwords made once."""
    server = tls_dev.dev_server("kafka")
    password = tls_dev.dev_secret("kafka-keystore")
    return BrokerSecurity(
        ca_file=server.ca, keystore=server.pkcs12(password), keystore_password=password,
        users=((DEV_USER, tls_dev.dev_secret("kafka-giftcards")),),
        broker_password=tls_dev.dev_secret("kafka-broker"),
    )


def settings_for(security: BrokerSecurity, bootstrap: str) -> str:
    """The service's settings for this broker, as lines of an env file."""
    password_file = tls_dev.dev_dir() / "kafka-giftcards.secret"
    return "\n".join([
        f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}",
        "GIFTCARDS_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        f"GIFTCARDS_KAFKA_SASL_USERNAME={DEV_USER}",
        f"GIFTCARDS_KAFKA_SASL_PASSWORD_FILE={password_file}",
        f"GIFTCARDS_KAFKA_CA_FILE={security.ca_file}",
    ])


def up_tls(port: int = TLS_PORT) -> str:
    """Ensure the SASL_SSL dev broker runs on `port`; return the settings that reach it."""
    at = _tls_home()
    with _locked():
        security = dev_security()
        pid = _running_pid(at)
        if pid is not None:
            _wait_ready(pid, port, at, security)
        else:
            if _port_open(port) or _port_open(port + 1):
                raise RuntimeError(f"port {port} or {port + 1} is already taken")
            _fetch_jars()
            at.mkdir(parents=True, exist_ok=True)
            launch_broker(port, at, security)
        return settings_for(security, _bootstrap(port))


def down_tls() -> None:
    with _locked():
        pid = _running_pid(_tls_home())
        if pid is not None:
            _stop(pid, _tls_home())


def status_tls() -> str | None:
    at = _tls_home()
    if _running_pid(at) is None:
        return None
    return f"{_bootstrap(int(_port_file(at).read_text().strip()))} (SASL_SSL)"


def down() -> None:
    """Stop the dev broker if it is running (SIGTERM for a clean shutdown, SIGKILL if it hangs)."""
    with _locked():
        pid = _running_pid()
        if pid is None:
            _pid_file().unlink(missing_ok=True)
            return
        _stop(pid)


def status() -> str | None:
    """Return the bootstrap address of the running dev broker, or None if it is stopped. A
    broker that another checkout started answers on the port too: `up` shares it, so it is
    running for this checkout as well (said as such, not "stopped")."""
    if _running_pid() is not None:
        return _bootstrap(_running_port())
    if _port_open(DEFAULT_PORT) and _answers(_bootstrap(DEFAULT_PORT)):
        return f"{_bootstrap(DEFAULT_PORT)} (shared: started by another checkout)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.kafka_dev", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--port", type=int, help="client port; the controller uses port+1 "
        f"(default {DEFAULT_PORT}; {CLUSTER_PORT} for a cluster, whose node i uses port+2(i-1))"
    )
    parser.add_argument(
        "--brokers", type=int, default=1,
        help="1: the quick suite's broker; 3: a replicated cluster (RF 3, min.insync.replicas 2)",
    )
    parser.add_argument(
        "--tls", action="store_true",
        help=f"the SASL_SSL broker (SCRAM-SHA-512, dev CA under .cache/tls; default port "
        f"{TLS_PORT}); `up` prints the service's settings for it",
    )
    args = parser.parse_args(argv)
    if args.tls:
        port = args.port or TLS_PORT
        return run_command(args.command, lambda: up_tls(port), down_tls, status_tls)
    if args.brokers > 1:
        port = args.port or CLUSTER_PORT
        return run_command(
            args.command,
            lambda: up_cluster(args.brokers, port),
            lambda: down_cluster(args.brokers, port),
            lambda: status_cluster(args.brokers, port),
        )
    return run_command(args.command, lambda: up(port=args.port or DEFAULT_PORT), down, status)


if __name__ == "__main__":
    sys.exit(main())
