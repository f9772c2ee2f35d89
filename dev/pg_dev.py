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
from pathlib import Path

import psycopg
from psycopg import sql

from dev.launcher import run_command

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


def _data_dir() -> Path:
    return home() / "data"


def _socket_dir() -> Path:
    return home() / "run"


def _log_file() -> Path:
    return home() / "log" / "postgres.log"


def url() -> str:
    return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port()}/{DATABASE}"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise up/down across processes so concurrent callers never initdb or start twice."""
    home().mkdir(parents=True, exist_ok=True)
    with open(home() / "pg.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _as_server_user(*cmd: str) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # cwd=home(): the server user may not be allowed into the caller's working directory.
    result = subprocess.run(_as_server_user(*cmd), cwd=home(), capture_output=True, text=True)
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


def _prepare_home() -> None:
    if len(str(_socket_dir() / f".s.PGSQL.{port()}")) > MAX_SOCKET_PATH:
        raise RuntimeError(
            f"{home()} is too deep for a Unix socket path; set PG_DEV_HOME to a shorter directory"
        )
    for path in (_socket_dir(), _log_file().parent):
        _server_dir(path)
    if _run("test", "-w", str(_socket_dir()), check=False).returncode != 0:
        raise RuntimeError(
            f"OS user {OS_USER!r} cannot reach {home()} (a parent directory is not traversable?); "
            "set PG_DEV_HOME to a directory it can reach, e.g. /tmp/giftcards-pg"
        )


def _initdb() -> None:
    """Create the cluster once, in a staging directory so an interrupted initdb never counts."""
    if (_data_dir() / "PG_VERSION").exists():
        return
    staging = home() / "data.partial"
    shutil.rmtree(staging, ignore_errors=True)
    # PostgreSQL insists on a data directory private to the server user.
    _server_dir(staging, mode=0o700)
    _run(
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
port = {port()}
unix_socket_directories = '{_socket_dir()}'
max_connections = 200
{"" if durable() else "fsync = off"}
{"" if durable() else "synchronous_commit = off"}
{"" if durable() else "full_page_writes = off"}
"""
        )
    shutil.rmtree(_data_dir(), ignore_errors=True)
    staging.rename(_data_dir())


def _running() -> bool:
    # pg_ctl status: 0 running, 3 stopped, 4 no usable data directory.
    if not _data_dir().exists():
        return False
    return _run(_bin("pg_ctl"), "status", "-D", str(_data_dir()), check=False).returncode == 0


def _start() -> None:
    result = _run(
        _bin("pg_ctl"),
        "start",
        "-D",
        str(_data_dir()),
        "-l",
        str(_log_file()),
        "-w",
        "-t",
        "60",
        check=False,
    )
    if result.returncode != 0:
        log = _log_file().read_text(errors="replace") if _log_file().exists() else ""
        log_tail = "\n".join(log.splitlines()[-30:])
        raise RuntimeError(
            f"PostgreSQL failed to start:\n{result.stdout}\n{result.stderr}\n{log_tail}"
        )


def _ensure_role_and_database() -> None:
    with psycopg.connect(
        host=str(_socket_dir()), port=port(), user=SUPERUSER, dbname="postgres", autocommit=True
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


def _accepts_us() -> bool:
    try:
        with psycopg.connect(url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _wait_accepting() -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(url(), connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def up() -> str:
    """Ensure the dev cluster is running with the giftcards role and database; return its URL."""
    with _locked():
        if not _running() and _accepts_us():
            # Another checkout's dev cluster on this port (CI clones this repository next to a
            # working copy): share it; tests and benches each create their own databases.
            print(f"using the PostgreSQL accepting {USER} on port {port()}", file=sys.stderr)
            return url()
        _prepare_home()
        _initdb()
        if not _running():
            _start()
        _ensure_role_and_database()
        _wait_accepting()
    return url()


def down() -> None:
    """Stop the dev cluster if running ('fast': roll back open sessions, then shut down cleanly)."""
    with _locked():
        if _running():
            _run(_bin("pg_ctl"), "stop", "-D", str(_data_dir()), "-m", "fast", "-w")


def status() -> str | None:
    """Return the URL of the running dev cluster, or None if it is stopped."""
    return url() if _running() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.pg_dev", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    return run_command(parser.parse_args(argv).command, up, down, status)

if __name__ == "__main__":
    sys.exit(main())
