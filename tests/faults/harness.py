"""Private services and processes for fault tests: started, killed and restarted by the test
itself."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from infra import kafka_dev, pg_dev
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.db import Database
from infra.kafka.topics import Topics
from projections import schema
from projections.config import load_fraud_config
from projections.runner import Projector
from projections.sources import sync_store
from tests.integration.kafka_helpers import produce
from tests.integration.test_checkout_consumer import completed, ordered
from tests.integration.test_relay import read_committed, stored_envelopes
from tests.services import drop_scratch_database, scratch_database

GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
README = Path(__file__).resolve().parents[2] / "README.md"
STOP_TIMEOUT_S = 60.0


def free_port(consecutive: int = 1) -> int:
    """A loopback port such that it and the `consecutive - 1` next ones are free right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + consecutive > 65535:
            continue
        if all(_bindable(first + i) for i in range(consecutive)):
            return first
    raise RuntimeError(f"no {consecutive} consecutive free loopback ports")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_dead(alive: Any, what: str, timeout: float = STOP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} still alive after {timeout:.0f}s")
        time.sleep(0.05)


class _Managed:
    """Context manager that always ends the service on exit, whatever the test did."""

    def __enter__(self) -> Self:
        self.start()
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
    """A single KRaft broker of the project's Kafka distribution (infra.kafka_dev), its config,
    data and logs under `home`, listening on the same free loopback ports across restarts."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        # The controller listens on port + 1 (kafka_dev's layout).
        self.port = port if port is not None else free_port(consecutive=2)
        self.pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Returns once the broker answers; the log dirs of an earlier start are kept."""
        assert self.pid is None or not kafka_dev.alive(self.pid), "broker already running"
        self.home.mkdir(parents=True, exist_ok=True)
        kafka_dev.ensure_jars()
        self.pid = kafka_dev.launch_broker(self.port, self.home)

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
        return kafka_dev._log_tail(lines, at=self.home)

    def _signal(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is None or not kafka_dev.alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        _wait_dead(lambda: kafka_dev.alive(pid), f"Kafka broker {pid}")


class PrivatePostgres(_Managed):
    """A PostgreSQL 15 cluster of its own (infra.pg_dev) on a free loopback port.

    Its home is a fresh directory under the system temp dir, which the `postgres` OS user can
    reach (a pytest tmp_path may not be); it is removed on close."""

    def __init__(self, port: int | None = None) -> None:
        home = Path(tempfile.mkdtemp(prefix="gc-pgf-", dir=tempfile.gettempdir()))
        home.chmod(0o755)
        port = port if port is not None else free_port()
        # fsync off for speed (the machine does not crash), synchronous_commit on (the server
        # does): what a client saw committed must still be there after the restart.
        self.cluster = pg_dev.Cluster(home, port, crash_safe=True)

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


class ServiceProcess:
    """A long-running `giftcards` command (`serve`, `relay`, `consume checkout`, ...) as a real
    subprocess of this venv's script, stdout and stderr appended to `log`."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.args = list(args)
        self.env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where the current run's output begins in `log`

    def start(self) -> None:
        assert not self.alive(), "already running"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._log_start = out.tell()
            self.process = subprocess.Popen(
                [GIFTCARDS, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (finish the batch, commit, close) and return the exit code."""
        assert self.process is not None, "never started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.args} ignored SIGTERM for {timeout:.0f}s:\n{self.log_tail()}"
            ) from None

    def log_text(self, *, current_run: bool = False) -> str:
        """The whole log, or only what the current (last started) run wrote."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as handle:
            handle.seek(self._log_start if current_run else 0)
            return handle.read().decode(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def wait_for_log(self, substring: str, timeout: float = 60.0) -> None:
        """Returns once the current run logged `substring`; fails early if the process died."""
        deadline = time.monotonic() + timeout
        while substring not in self.log_text(current_run=True):
            if not self.alive():
                raise AssertionError(
                    f"{self.args} exited ({self.exit_code()}) before logging {substring!r}:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.args} did not log {substring!r} within {timeout:.0f}s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


# ---------------------------------------------------------------------------------------------
# Load


def produce_checkout_load(
    bootstrap: str, topics: Topics, n: int, *, seed: int, codes: Sequence[str] = ()
) -> set[str]:
    """`n` checkout messages on `topics.checkout`: new gift card orders, payments with the given
    `codes` (each card paid at most once by its own order; a code is retried under a second
    message id for the same order), order retries under a new message id, and exact duplicates
    (same message id and bytes, as an at-least-once producer resends). Returns the message ids."""
    rng = random.Random(seed)
    sent: list[bytes] = []
    ids: set[str] = set()
    unused = list(codes)
    rng.shuffle(unused)
    paid: list[tuple[str, str]] = []  # (order id, code)
    for i in range(n):
        roll = rng.random()
        message_id = f"load-{seed}-{i}"
        if roll < 0.15 and sent:
            raw = rng.choice(sent)  # redelivered as is
        elif roll < 0.25 and sent:
            # The order service retried an order under a new message id: still one effect.
            again = orjson.loads(rng.choice(sent))
            again["message_id"] = message_id
            raw = orjson.dumps(again)
        elif roll < 0.5 and unused:
            order_id, code = f"pay-{seed}-{i}", unused.pop()
            paid.append((order_id, code))
            raw = completed(message_id, order_id, code)
        else:
            raw = ordered(message_id, f"buy-{seed}-{i}", amount=rng.choice([2000, 5000, 30000]))
        sent.append(raw)
        ids.add(orjson.loads(raw)["message_id"])
    produce(bootstrap, topics.checkout, sent)
    return ids


def purchase_codes(env: Mapping[str, str], n: int, *, tag: str = "codes") -> list[str]:
    """Codes of `n` new FR cards of 50.00 bought straight through the application on env's store
    (the buyer's inbox), for CheckoutCompleted load."""
    service = build(load_settings(dict(env)))
    try:
        with service.app.batch():
            return [
                service.app.purchase(
                    market="FR", amount=5000, payment_method="card", buyer_id="load",
                    order_id=f"{tag}-{i}",
                )["code"]
                for i in range(n)
            ]
    finally:
        service.close()


@dataclass
class PurchaseLoop:
    """Runs `giftcards --json purchase` one after the other in a thread until stopped, as a till
    would: a purchase that failed (exit 3) is retried with the same order id."""

    env: Mapping[str, str]
    tag: str = "till"
    outcomes: list[tuple[str, int, dict[str, Any] | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True, name="purchase-loop")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(STOP_TIMEOUT_S)

    def _run(self) -> None:
        env = {**os.environ, **self.env}
        i = 0
        while not self._stop.is_set():
            order_id = f"{self.tag}-{i}"
            done = subprocess.run(
                [GIFTCARDS, "--json", "purchase", "--market", "FR", "--amount", "50",
                 "--payment-method", "card", "--buyer-id", "till", "--order-id", order_id],
                env=env, capture_output=True, check=False,
            )
            try:
                reply = orjson.loads(done.stdout)
            except orjson.JSONDecodeError:
                reply = None
            self.outcomes.append((order_id, done.returncode, reply))
            if done.returncode != 3:
                i += 1

    @property
    def succeeded(self) -> set[str]:
        """Order ids that got a card."""
        return {order for order, code, _ in self.outcomes if code == 0}

    @property
    def unexpected(self) -> list[tuple[str, int, dict[str, Any] | None]]:
        """Outcomes other than success or an internal error that the till retries."""
        return [o for o in self.outcomes if o[1] not in (0, 3)]


# ---------------------------------------------------------------------------------------------
# The end check


def replies_may_repeat() -> bool:
    """The README's contract: replies carry the same content when repeated after a crash."""
    return "same content when repeated after a crash" in " ".join(README.read_text().split())


def assert_consistent(
    env: dict[str, str],
    bootstrap: str,
    topics: Topics,
    *,
    message_ids: set[str] | None,
    settle_timeout: float = 60.0,
) -> None:
    """Store, topics and views agree: every published stored event once on `giftcard.events`
    (read_committed) in per-card order; one reply per message id; no card redeemed twice; the
    live views equal a rebuild from the store. Retried until `settle_timeout` so that processes
    still running can catch up; then fails listing what is wrong."""
    deadline = time.monotonic() + settle_timeout
    while True:
        problems = consistency_problems(env, bootstrap, topics, message_ids=message_ids)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    shown = "\n  ".join(problems[:30])
    more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
    assert not problems, f"{len(problems)} inconsistencies:\n  {shown}{more}"


def consistency_problems(
    env: dict[str, str], bootstrap: str, topics: Topics, *, message_ids: set[str] | None
) -> list[str]:
    """What assert_consistent checks, once: a list of specific problems, empty if none."""
    service = build(load_settings(env))
    try:
        expected = stored_envelopes(service.app)
        records = read_committed(bootstrap, topics.events)
        problems = event_log_problems(records, expected)
        if message_ids is not None:
            replies = [r[3] for r in read_committed(bootstrap, topics.results)]
            problems += reply_problems(replies, message_ids, may_repeat=replies_may_repeat())
        problems += double_redemptions(expected, "store")
        problems += double_redemptions([r[3] for r in records], "topic")
        problems += view_problems(service, env)
    finally:
        service.close()
    return problems


def _name(envelope: Mapping[str, Any]) -> str:
    return (
        f"{envelope['event_type']} of {envelope['stream_id']} "
        f"v{envelope['card_version']} (position {envelope['position']})"
    )


def event_log_problems(
    records: Iterable[tuple[int, int, bytes, dict[str, Any]]], expected: list[dict[str, Any]]
) -> list[str]:
    """Every expected envelope exactly once, nothing else, per stream in version order."""
    problems: list[str] = []
    wanted = {e["event_id"]: e for e in expected}
    seen: Counter[str] = Counter()
    versions: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for partition, offset, key, envelope in records:
        event_id = envelope.get("event_id")
        seen[event_id] += 1
        if event_id not in wanted:
            problems.append(f"extra record at partition {partition} offset {offset}: "
                            f"{_name(envelope)} is not a stored published event")
            continue
        if envelope != wanted[event_id]:
            problems.append(f"{_name(envelope)} at partition {partition} offset {offset} "
                            "differs from the stored event's envelope")
        stream = envelope["stream_id"]
        if key != stream.encode():
            problems.append(f"{_name(envelope)} has key {key!r}, not its stream id")
        versions[stream].append((partition, offset, envelope["card_version"]))
    for event_id, count in seen.items():
        if count > 1 and event_id in wanted:
            problems.append(f"{_name(wanted[event_id])} published {count} times")
    for event_id, envelope in wanted.items():
        if event_id not in seen:
            problems.append(f"{_name(envelope)} is stored but not on the topic")
    for stream, rows in versions.items():
        if len({p for p, _, _ in rows}) > 1:
            problems.append(f"stream {stream} is on partitions {sorted({p for p, _, _ in rows})}")
        order = [v for _, _, v in sorted(rows)]
        if order != sorted(order):
            problems.append(f"stream {stream}: versions out of order on the topic: {order}")
    return problems


def reply_problems(
    replies: list[dict[str, Any]], message_ids: set[str], *, may_repeat: bool
) -> list[str]:
    """One reply per message id; repeats allowed only if identical and the contract allows them."""
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for reply in replies:
        by_id[str(reply.get("message_id"))].append(reply)
    problems = [f"message {m}: no reply" for m in sorted(message_ids - set(by_id))]
    problems += [f"reply to unknown message id {m}" for m in sorted(set(by_id) - message_ids)]
    for message_id, copies in sorted(by_id.items()):
        if len(copies) > 1 and not may_repeat:
            problems.append(f"message {message_id}: {len(copies)} replies")
        elif any(copy != copies[0] for copy in copies):
            problems.append(f"message {message_id}: {len(copies)} replies that differ: {copies}")
    return problems


def double_redemptions(envelopes: Iterable[Mapping[str, Any]], where: str) -> list[str]:
    """R11: at most one GiftCardRedeemed per card."""
    counts = Counter(e["card_id"] for e in envelopes if e["event_type"] == "GiftCardRedeemed")
    return [f"card {card} redeemed {n} times in the {where}" for card, n in counts.items() if n > 1]


def view_problems(service: Service, env: Mapping[str, str]) -> list[str]:
    """The live views (GIFTCARDS_VIEWS_URL, else beside the store) equal a rebuild from the
    store, table by table, row by row (as tests/integration/test_determinism.py compares)."""
    live = Database(env.get("GIFTCARDS_VIEWS_URL") or service.settings.database_url)
    scratch = scratch_database(service.db.url if service.db.is_postgres else None)
    rebuilt = Projector(Database(scratch), load_fraud_config(dict(env)))
    try:
        sync_store(service.app, rebuilt)
        want, got = schema.dump(rebuilt.db), schema.dump(live)
    finally:
        rebuilt.db.close()
        live.close()
        drop_scratch_database(scratch)
    problems = []
    for table, rows in want.items():
        have = got.get(table, [])
        if have != rows:
            missing = [r for r in rows if r not in have][:3]
            extra = [r for r in have if r not in rows][:3]
            problems.append(f"view {table}: live has {len(have)} rows, the rebuild {len(rows)}; "
                            f"missing {missing}, unexpected {extra}")
    return problems
