"""`python -m bench.relay_outage [--cycles N] [--parallel P]`: hunts a duplicate on the events
topic after broker outages: per cycle a private broker, `serve` under a purchase
loop (or `relay --batch-size 2` over a backlog), the broker stopped (SIGTERM) or killed
(SIGKILL) and restarted, or frozen (SIGSTOP/SIGCONT), at a random moment after a batch was
relayed, for a random while; then the topic read exactly by two independent
clients (kafka-python and kcat/librdkafka, read_committed) and every duplicate shown with its
partition, offsets and whether a transaction marker lies between the copies.

It drives the fault tests' own harness (tests/faults), so a finding here is what the suite's
broker-outage test would see. Long by design: not part of the suite."""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka.record import MemoryRecords

from dev.services import unique_topic_prefix
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.topics import Topics
from tests.faults.harness import (
    PrivateKafka,
    PurchaseLoop,
    ServiceProcess,
    event_log_problems,
    kcat_records,
    purchase_codes,
)
from tests.integration.kafka_helpers import create_topics
from tests.integration.test_relay import read_committed, stored_envelopes

SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
OUTAGES_S = (3.0, 12.0, 27.0, 30.0, 33.0, 36.0)  # around the relay's 30 s ack and commit bounds
FAULTS = ("stop", "kill", "freeze")  # SIGTERM + restart, SIGKILL + restart, SIGSTOP + SIGCONT
SETTLE_S = 120.0
BACKLOG = 400  # purchases stored before a `relay` mode cycle starts


@dataclass
class Cycle:
    number: int
    fault: str
    delay: float
    outage: float
    stored: int = 0
    problems: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    log: Path | None = None

    def line(self) -> str:
        verdict = "DUPLICATE" if self.duplicates else ("PROBLEM" if self.problems else "ok")
        return (f"cycle {self.number:3d}: {self.fault:4s} {self.delay:4.2f}s after a batch, "
                f"down {self.outage:4.1f}s, {self.stored:4d} events stored: {verdict}")


def kcat_positions(bootstrap: str, topic: str) -> str:
    """The positions topic as written (read_uncommitted): offset, key, value per record."""
    done = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-X",
         "isolation.level=read_uncommitted", "-f", "%o %k %s\n"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return done.stdout


def segment_dump(kafka_home: Path, topics: Topics) -> str:
    """Every record batch of the prefix's topics as the broker's segment files hold them (the
    broker stopped): offsets, producer id and epoch, transactional or not, control markers
    (COMMIT/ABORT) and per record the event's position, so a duplicate's two copies can be told
    apart exactly (one transaction retried, or two transactions)."""
    out = []
    logs = kafka_home / "data" / "kraft-combined-logs"
    names = (f"{topics.events}-*", f"{topics.relay_positions}-*")
    for segment in sorted(s for name in names for s in logs.glob(f"{name}/*.log")):
        out.append(f"== {segment.parent.name}/{segment.name}")
        records = MemoryRecords(segment.read_bytes())
        while (batch := records.next_batch()) is not None:
            head = (f"{batch.base_offset}-{batch.last_offset} producer {batch.producer_id} "
                    f"epoch {batch.producer_epoch} txn {batch.is_transactional}")
            if batch.is_control_batch:
                out.append(f"{head} {'ABORT' if next(iter(batch)).abort else 'COMMIT'}")
                continue
            items = []
            for record in batch:
                value = orjson.loads(record.value) if record.value else {}
                items.append(f"{record.offset}:{value.get('position')}")
            out.append(f"{head} {' '.join(items)}")
    return "\n".join(out)


def duplicates(bootstrap: str, topics: Topics) -> list[str]:
    """Every event id seen twice by either reader, with offsets, and the offsets present
    between the copies (a gap in the uncommitted read is a transaction marker)."""
    python = [(p, o, str(e["event_id"])) for p, o, _, e in read_committed(bootstrap, topics.events)]
    kcat = kcat_records(bootstrap, topics.events, committed=True)
    raw = kcat_records(bootstrap, topics.events, committed=False)
    present = defaultdict(set)
    for partition, offset, _ in raw:
        present[partition].add(offset)
    found = []
    for reader, rows in (("kafka-python", python), ("kcat", kcat)):
        copies: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for partition, offset, event_id in rows:
            copies[event_id].append((partition, offset))
        for event_id, where in copies.items():
            if len(where) < 2:
                continue
            (p1, o1), (p2, o2) = sorted(where)[:2]
            between = range(o1 + 1, o2)
            markers = [o for o in between if o not in present[p1]] if p1 == p2 else []
            found.append(f"{reader}: event {event_id} at {sorted(where)}; "
                         f"{len(markers)} control offsets between ({markers[:5]})")
    if any(f.startswith("kafka-python") for f in found) != any(f.startswith("kcat") for f in found):
        found.append("THE READERS DISAGREE")
    return found


def run_cycle(number: int, rng: random.Random, work: Path, mode: str) -> Cycle:
    cycle = Cycle(number, rng.choice(FAULTS), rng.uniform(0.0, 2.0), rng.choice(OUTAGES_S))
    home = work / f"cycle-{number}"
    topics = Topics(unique_topic_prefix())
    env = {
        "GIFTCARDS_DATA_DIR": str(home / "var"),
        "GIFTCARDS_DATABASE_URL": f"sqlite:///{home / 'giftcards.sqlite3'}",
        "GIFTCARDS_SECRET_KEY": SECRET,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
    }
    cycle.log = home / "serve.log"
    with PrivateKafka(home / "kafka") as kafka:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
        create_topics(kafka.bootstrap, topics, 2)
        if mode == "relay":  # a backlog relayed 2 events per transaction: many commits to hit
            purchase_codes(env, BACKLOG, tag=f"backlog-{number}")
        args = ["relay", "--batch-size", "2"] if mode == "relay" else ["serve"]
        with ServiceProcess(args, env, cycle.log) as serve:
            with PurchaseLoop(env, tag=f"cycle-{number}"):
                serve.wait_for_log("relayed ", timeout=90)
                time.sleep(cycle.delay)
                if cycle.fault == "freeze":
                    # A hung broker: requests wait in its sockets and are served after the
                    # client gave up on them (a commit that times out, then happens).
                    assert kafka.pid is not None
                    os.kill(kafka.pid, signal.SIGSTOP)
                    time.sleep(cycle.outage)
                    os.kill(kafka.pid, signal.SIGCONT)
                else:
                    kafka.kill() if cycle.fault == "kill" else kafka.stop()
                    time.sleep(cycle.outage)
                    kafka.start()
                mark = len(serve.log_text())
                deadline = time.monotonic() + 90
                while "relayed " not in serve.log_text()[mark:] and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(3)
            service = build(load_settings(env))
            try:
                deadline = time.monotonic() + SETTLE_S
                while True:
                    expected = stored_envelopes(service.app)
                    records = read_committed(kafka.bootstrap, topics.events)
                    cycle.problems = event_log_problems(records, expected)
                    if not cycle.problems or time.monotonic() > deadline:
                        break
                    time.sleep(1.0)
                cycle.stored = len(expected)
            finally:
                service.close()
            serve.terminate()
        cycle.duplicates = duplicates(kafka.bootstrap, topics)
        if cycle.duplicates or cycle.problems:
            (home / "positions.txt").write_text(kcat_positions(kafka.bootstrap,
                                                              topics.relay_positions))
            kafka.stop()  # segments complete on disk
            (home / "segments.txt").write_text(segment_dump(home / "kafka", topics))
    return cycle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_outage", description=__doc__)
    parser.add_argument("--cycles", type=int, default=10, help="cycles per worker (default 10)")
    parser.add_argument("--parallel", type=int, default=1, help="workers at once (default 1)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--mode", choices=["serve", "relay"], default="serve",
                        help="serve under a purchase loop (the suite's test), or `relay "
                        "--batch-size 2` over a backlog (a commit every few ms)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gc-relay-outage-"))
    print(f"work directory {work}", flush=True)
    found: list[Cycle] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(args.seed * 1000 + index)
        for n in range(args.cycles):
            number = index * args.cycles + n
            try:
                cycle = run_cycle(number, rng, work, args.mode)
            except Exception as exc:  # a cycle that failed to run is reported, not a finding
                print(f"cycle {number:3d}: did not run: {type(exc).__name__}: {exc}"[:400],
                      flush=True)
                continue
            with lock:
                print(cycle.line(), flush=True)
                for text in [*cycle.duplicates, *cycle.problems[:10]]:
                    print("    " + text, flush=True)
                if cycle.duplicates or cycle.problems:
                    print(f"    serve log: {cycle.log}", flush=True)
                    found.append(cycle)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = args.cycles * args.parallel
    print(f"{total} cycles, {len(found)} with a finding ({work})", flush=True)


if __name__ == "__main__":
    main()
