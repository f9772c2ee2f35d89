"""Dev launcher that owns a throwaway local PostgreSQL 15 cluster for development and tests."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from dev import tls_dev
from dev.launcher import run_command
from dev.tls_dev import ServerCert

USER = "giftcards"
PASSWORD = "giftcards"
DATABASE = "giftcards"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root, so as root every server-side command runs as this OS user.
OS_USER = "postgres"
CONNECT_TIMEOUT_S = 30.0
# Unix socket paths are limited to 107 bytes by the kernel's sockaddr_un.
MAX_SOCKET_PATH = 107

REPO_ROOT = Path(__file__).resolve().parent.parent


def port() -> int:
    return int(os.environ.get("PG_DEV_PORT", "15432"))


def durable() -> bool:
    """PG_DEV_DURABLE=1: production-like commits (fsync), for benchmarks of transaction cost."""
    return os.environ.get("PG_DEV_DURABLE") == "1"


def home() -> Path:
    """Under the system temp dir by default: the `postgres` OS user must be able to reach it,
    and a checkout may live below a directory only root can enter (e.g. `mktemp -d`)."""
    given = os.environ.get("PG_DEV_HOME")
    if given:
        return Path(given).resolve()
    checkout = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"giftcards-pg-{checkout}-{port()}"


def _bin(name: str) -> str:
    return str(Path(os.environ.get("PG_DEV_BIN", "/usr/lib/postgresql/15/bin")) / name)


@dataclass(frozen=True)
class Cluster:
    """Where a cluster lives and listens: the dev one (`cluster()`) or a test's private one."""

    home: Path
    port: int
    # fsync on: commits survive a crash of the machine (benchmarks of transaction cost).
    durable: bool = False
    # synchronous_commit on: commits survive a crash of the server itself, which fault tests
    # cause; with it off, a commit acknowledged up to ~0.6 s before the crash is lost.
    crash_safe: bool = False
    # ssl = on with this certificate, and TCP clients accepted over TLS only (hostssl).
    tls: ServerCert | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "postgres.log"

    @property
    def url(self) -> str:
        url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"
        if self.tls is None:
            return url
        return f"{url}?sslmode=verify-full&sslrootcert={self.tls.ca}"


def cluster() -> Cluster:
    """The dev cluster, as the environment configures it."""
    return Cluster(home(), port(), durable())


def url() -> str:
    return cluster().url


def tls_cluster() -> Cluster:
    """`up --tls`: a second dev cluster (PG_DEV_TLS_PORT, 15433) with ssl = on, TLS-only logins
    and the dev CA's certificate (dev/tls_dev.py); its URL says sslmode=verify-full."""
    tls_port = int(os.environ.get("PG_DEV_TLS_PORT", "15433"))
    base = home()
    return Cluster(base.with_name(f"{base.name}-tls-{tls_port}"), tls_port, durable(),
                   tls=tls_dev.dev_server("postgres"))


def up_tls() -> str:
    c = tls_cluster()
    with _locked(c):
        start_cluster(c)
    return c.url


def down_tls() -> None:
    c = tls_cluster()
    with _locked(c):
        stop_cluster(c)


def status_tls() -> str | None:
    c = tls_cluster()
    return c.url if _running(c) else None


@contextlib.contextmanager
def _locked(c: Cluster) -> Iterator[None]:
    """Serialise up/down across processes so concurrent callers never initdb or start twice."""
    c.home.mkdir(parents=True, exist_ok=True)
    with open(c.home / "pg.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _as_server_user(*cmd: str) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _run(c: Cluster, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # cwd=home: the server user may not be allowed into the caller's working directory.
    result = subprocess.run(_as_server_user(*cmd), cwd=c.home, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def _server_dir(path: Path, mode: int = 0o755) -> None:
    """Create a directory the server writes to; only such subdirectories are handed to OS_USER,
    never home() itself, which may be a shared directory named by PG_DEV_HOME."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if os.geteuid() == 0:
        try:
            server_user = pwd.getpwnam(OS_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root needs an OS user {OS_USER!r} to own the cluster"
            ) from None
        os.chown(path, server_user.pw_uid, server_user.pw_gid)


def _prepare_home(c: Cluster) -> None:
    if len(str(c.socket_dir / f".s.PGSQL.{c.port}")) > MAX_SOCKET_PATH:
        raise RuntimeError(
            f"{c.home} is too deep for a Unix socket path; set PG_DEV_HOME to a shorter directory"
        )
    for path in (c.socket_dir, c.log_file.parent):
        _server_dir(path)
    if _run(c, "test", "-w", str(c.socket_dir), check=False).returncode != 0:
        raise RuntimeError(
            f"OS user {OS_USER!r} cannot reach {c.home} (a parent directory is not traversable?); "
            "set PG_DEV_HOME to a directory it can reach, e.g. /tmp/giftcards-pg"
        )


def _initdb(c: Cluster) -> None:
    """Create the cluster once, in a staging directory so an interrupted initdb never counts."""
    if (c.data_dir / "PG_VERSION").exists():
        return
    staging = c.home / "data.partial"
    shutil.rmtree(staging, ignore_errors=True)
    # PostgreSQL insists on a data directory private to the server user.
    _server_dir(staging, mode=0o700)
    _run(
        c,
        _bin("initdb"),
        "-D",
        str(staging),
        "-U",
        SUPERUSER,
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        # The superuser gets in only over the Unix socket; TCP clients always need a password.
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
    )
    with open(staging / "postgresql.conf", "a") as conf:
        conf.write(
            f"""
# Added by dev/pg_dev.py: a throwaway dev cluster; unless PG_DEV_DURABLE=1, durability is
# traded for speed.
listen_addresses = '127.0.0.1'
port = {c.port}
unix_socket_directories = '{c.socket_dir}'
max_connections = 200
{"" if c.durable else "fsync = off"}
{"" if c.durable or c.crash_safe else "synchronous_commit = off"}
{"" if c.durable else "full_page_writes = off"}
"""
        )
    if c.tls is not None:
        _enable_tls(staging, c.tls)
    shutil.rmtree(c.data_dir, ignore_errors=True)
    staging.rename(c.data_dir)


def _enable_tls(data_dir: Path, tls: ServerCert) -> None:
    """The server's certificate and key in its data directory (the key private to the server
    user, which PostgreSQL insists on); TCP logins only over TLS."""
    for source, name in ((tls.cert, "server.crt"), (tls.key, "server.key")):
        target = data_dir / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
        if os.geteuid() == 0:
            server_user = pwd.getpwnam(OS_USER)
            os.chown(target, server_user.pw_uid, server_user.pw_gid)
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
    hba = data_dir / "pg_hba.conf"
    lines = hba.read_text().splitlines()
    hba.write_text("\n".join(
        "hostssl" + line[len("host"):] if line.startswith("host ") else line for line in lines
    ) + "\n")


def _running(c: Cluster) -> bool:
    # pg_ctl status: 0 running, 3 stopped, 4 no usable data directory.
    if not c.data_dir.exists():
        return False
    return _run(c, _bin("pg_ctl"), "status", "-D", str(c.data_dir), check=False).returncode == 0


def _start(c: Cluster) -> None:
    result = _run(
        c,
        _bin("pg_ctl"),
        "start",
        "-D",
        str(c.data_dir),
        "-l",
        str(c.log_file),
        "-w",
        "-t",
        "60",
        check=False,
    )
    if result.returncode != 0:
        log = c.log_file.read_text(errors="replace") if c.log_file.exists() else ""
        log_tail = "\n".join(log.splitlines()[-30:])
        raise RuntimeError(
            f"PostgreSQL failed to start:\n{result.stdout}\n{result.stderr}\n{log_tail}"
        )


def _ensure_role_and_database(c: Cluster) -> None:
    with psycopg.connect(
        host=str(c.socket_dir), port=c.port, user=SUPERUSER, dbname="postgres", autocommit=True
    ) as conn:
        role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone()
        if role is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(USER), sql.Literal(PASSWORD)
                )
            )
        db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if db is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(USER)
                )
            )


def _accepts_us(c: Cluster) -> bool:
    try:
        with psycopg.connect(c.url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _wait_accepting(c: Cluster) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(c.url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def up() -> str:
    """Ensure the dev cluster is running with the giftcards role and database; return its URL."""
    c = cluster()
    with _locked(c):
        if not _running(c) and _accepts_us(c):
            # Another checkout's dev cluster on this port (CI clones this repository next to a
            # working copy): share it; tests and benches each create their own databases.
            print(f"using the PostgreSQL accepting {USER} on port {c.port}", file=sys.stderr)
            return c.url
        start_cluster(c)
    return c.url


def start_cluster(c: Cluster) -> None:
    """initdb once, start if stopped, create the role and database; returns once it accepts."""
    _prepare_home(c)
    _initdb(c)
    if not _running(c):
        _start(c)
    _ensure_role_and_database(c)
    _wait_accepting(c)


def stop_cluster(c: Cluster, mode: str = "fast") -> None:
    """pg_ctl stop in `mode` ("fast" rolls back sessions; "immediate" is a crash) and wait."""
    if _running(c):
        _run(c, _bin("pg_ctl"), "stop", "-D", str(c.data_dir), "-m", mode, "-w")


def down() -> None:
    """Stop the dev cluster if running ('fast': roll back open sessions, then shut down cleanly)."""
    c = cluster()
    with _locked(c):
        stop_cluster(c)


def status() -> str | None:
    """Return the URL of the running dev cluster, or None if it is stopped; one that another
    checkout started and `up` would share is running too (said as such)."""
    c = cluster()
    if _running(c):
        return url()
    return f"{url()} (shared: started by another checkout)" if _accepts_us(c) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.pg_dev", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--tls", action="store_true",
                        help="the TLS-only cluster (ssl = on, hostssl logins, dev CA under "
                        ".cache/tls, port PG_DEV_TLS_PORT or 15433); its URL has "
                        "sslmode=verify-full")
    args = parser.parse_args(argv)
    if args.tls:
        return run_command(args.command, up_tls, down_tls, status_tls)
    return run_command(args.command, up, down, status)

if __name__ == "__main__":
    sys.exit(main())
