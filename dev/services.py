"""Locates (or starts) the real Kafka and PostgreSQL that the tests and the bench run against."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import os
import random
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import docker
import psycopg
from psycopg import sql
from testcontainers.community.kafka import KafkaContainer
from testcontainers.community.postgres import PostgresContainer

from dev import kafka_dev, pg_dev

# testcontainers' KafkaContainer drives the Confluent image's own start scripts, so it cannot
# run apache/kafka images; cp-kafka 7.9 is Apache Kafka 3.9 in KRaft mode via with_kraft().
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
POSTGRES_IMAGE = "postgres:15-alpine"
CONTAINER_START_TIMEOUT_S = 120


def _docker_answers() -> bool:
    """True if a Docker daemon responds; any failure (no client, no socket, timeout) means no."""
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _first_available(service: str, starters: list[tuple[str, Callable[[], str]]]) -> str:
    """Return the first starter's result; if every one fails, raise with all the reasons."""
    failures = []
    for name, start in starters:
        try:
            return start()
        except Exception as exc:
            failures.append(f"  {name}: {type(exc).__name__}: {exc}")
    raise RuntimeError(f"no {service} available for tests; tried:\n" + "\n".join(failures))


# Cached so a test process starts at most one container per service; each is stopped at exit
# explicitly, because testcontainers' own reaper may be disabled (TESTCONTAINERS_RYUK_DISABLED).
@functools.cache
def _kafka_container() -> str:
    container = KafkaContainer(KAFKA_IMAGE).with_kraft()
    container.start(timeout=CONTAINER_START_TIMEOUT_S)
    atexit.register(container.stop)
    return container.get_bootstrap_server()


@functools.cache
def _postgres_container() -> str:
    container = PostgresContainer(
        POSTGRES_IMAGE, username="giftcards", password="giftcards", dbname="giftcards", driver=None
    )
    container.start()
    atexit.register(container.stop)
    return container.get_connection_url()


def kafka_bootstrap() -> str:
    """$KAFKA_BOOTSTRAP_SERVERS, else a Docker container's, else the local dev broker's."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        return configured
    starters: list[tuple[str, Callable[[], str]]] = []
    if _docker_answers():
        starters.append((f"docker {KAFKA_IMAGE}", _kafka_container))
    starters.append(("local broker (dev.kafka_dev)", kafka_dev.up))
    return _first_available("Kafka", starters)


def postgres_url() -> str:
    """$GIFTCARDS_TEST_POSTGRES_URL, else a Docker container's, else the local dev cluster's URL."""
    configured = os.environ.get("GIFTCARDS_TEST_POSTGRES_URL")
    if configured:
        return configured
    starters: list[tuple[str, Callable[[], str]]] = []
    if _docker_answers():
        starters.append((f"docker {POSTGRES_IMAGE}", _postgres_container))
    starters.append(("local cluster (dev.pg_dev)", pg_dev.up))
    return _first_available("PostgreSQL", starters)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def fresh_postgres_database(base_url: str) -> str:
    """Create an empty, uniquely named database on base_url's server and return its URL."""
    name = f"giftcards_test_{uuid.uuid4().hex[:12]}"
    # CREATE DATABASE cannot run inside a transaction block.
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_database(base_url, name)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by fresh_postgres_database, so repeated runs don't pile them up."""
    name = urlsplit(url).path.lstrip("/")
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(20):
        try:
            with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
                # WITH (FORCE) ends sessions a test left open (e.g. a leaked pool).
                conn.execute(statement)
            return
        except psycopg.errors.InsufficientPrivilege:
            # An autovacuum worker (a superuser session) on the fresh database: it ends soon.
            time.sleep(0.25 * (attempt + 1))
    warnings.warn(f"database {name} left behind: autovacuum kept it busy", stacklevel=2)


def scratch_database(postgres_url: str | None) -> str:
    """An empty database to rebuild views into: a fresh one on postgres_url's server, else a
    temporary SQLite file. Remove it with drop_scratch_database."""
    if postgres_url:
        return fresh_postgres_database(postgres_url)
    handle, path = tempfile.mkstemp(prefix="giftcards-scratch-", suffix=".sqlite3")
    os.close(handle)
    return f"sqlite:///{path}"


def drop_scratch_database(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
    else:
        drop_postgres_database(url)


def unique_topic_prefix() -> str:
    """A prefix for topic names (and transactional/group ids) that no other test run shares."""
    return f"test-{uuid.uuid4().hex[:12]}-"


# Ports handed out by free_port come from below the kernel's ephemeral range (where every
# outgoing connection takes its local port, so a port found free there may be taken a moment
# later) and above the dev services' fixed ports (15432-15447, 19092-19297).
PORTS_FROM = 20000
# One byte per port in this file, locked (fcntl record lock) by the process the port was handed
# to until it exits: parallel test workers, and anyone else's test run on this machine, never
# get the same port between one's free-check and its server's bind, nor while a test's broker
# is down between a kill and its restart on the same port.
PORT_RESERVATIONS = Path(tempfile.gettempdir()) / "giftcards-port-reservations"
_reservations: list[int] = []  # the file's descriptor, opened once: closing it drops the locks
_reserved: set[int] = set()


def free_port(consecutive: int = 1) -> int:
    """A loopback port such that it and the `consecutive - 1` next ones are free right now and
    reserved for this process for its lifetime (see PORT_RESERVATIONS)."""
    low, high = PORTS_FROM, _ephemeral_ports_start()
    for _ in range(2000):
        first = random.randrange(low, high - consecutive)
        wanted = range(first, first + consecutive)
        if _reserved.intersection(wanted) or not _reserve(first, consecutive, fcntl.LOCK_EX):
            continue
        if all(_bindable(port) for port in wanted):
            _reserved.update(wanted)
            return first
        _reserve(first, consecutive, fcntl.LOCK_UN)
    raise RuntimeError(f"no {consecutive} consecutive free loopback ports in {low}-{high}")


def _ephemeral_ports_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return max(int(text.split()[0]), PORTS_FROM + 1000)
    except (OSError, ValueError, IndexError):
        return 32768


def _reserve(first: int, count: int, how: int) -> bool:
    """Lock (or unlock) bytes [first, first + count) of the reservations file; False if another
    process holds one of them."""
    if not _reservations:
        fd = os.open(PORT_RESERVATIONS, os.O_RDWR | os.O_CREAT, 0o666)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)  # shared by every user's runs
        _reservations.append(fd)
    try:
        fcntl.lockf(_reservations[0], how | fcntl.LOCK_NB, count, first)
    except OSError:
        return False
    return True


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
