"""`python -m bench.chaos [--seconds 60]`: 3 brokers, 3 `serve` instances on durable PostgreSQL, a
steady mixed checkout load, and at random moments a broker (a partition leader) killed -9, a
`serve` killed -9, PostgreSQL restarted, a `serve` frozen (SIGSTOP) past its sessions and leases
then resumed, a `serve` restarted with its wall clock an hour behind (Debian's `faketime`: it
must refuse to start, naming the offset) then normally; then the end check and the figures
(not a timed test).
Recovery is timed against the lag sampled all along: back to the steady lag (what the load keeps
in flight before any fault) after each fault, and to zero once the load has stopped.

It drives the fault tests' own harness (tests/faults): the same private services, load and end
check, so the figures mean what the tests assert."""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from dev import pg_dev
from dev.services import unique_topic_prefix
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.topics import Topics
from infra.runtime import tune_gc
from infra.status import status
from tests.faults.harness import (
    PrivateKafkaCluster,
    PrivatePostgres,
    ServiceProcess,
    consistency_problems,
    free_port,
    produce_checkout_load,
    purchase_codes,
)
from tests.faults.test_clock_skew import FAKETIME_ENV, HOUR_BEHIND
from tests.integration.kafka_helpers import create_topics

SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
PARTITIONS = 6
WAVE = 10  # checkout messages per wave, one wave every WAVE_PAUSE_S
WAVE_PAUSE_S = 0.25
LEASE_S = 5
STEADY_S = 8  # lag sampled without faults first
CALM = 4 * WAVE  # lag at most four waves: the backlog of the cards bought beforehand is gone
SAMPLE_S = 1.0
FAULTS = ("broker", "serve", "postgres", "frozen", "skewed")
# Longer than the consumers' session (10 s) and the relay's lease: both move to another instance
# while this one is stopped, and it comes back to a poll and a lease that are no longer its own.
FROZEN_S = 20
SKEWED_EXIT_TIMEOUT_S = 90


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (default 60)")
    parser.add_argument("--serve", type=int, default=3, help="serve instances (default 3)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated kinds, each once (default {','.join(FAULTS)})")
    args = parser.parse_args(argv)
    kinds = [k for k in args.faults.split(",") if k]
    if unknown := set(kinds) - set(FAULTS):
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    tune_gc()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="gc-chaos-"))
    postgres = PrivatePostgres(port=free_port())
    # Durable commits (fsync on), crash-safe (synchronous_commit on): what production runs.
    postgres.cluster = pg_dev.Cluster(postgres.home, postgres.cluster.port, durable=True,
                                      crash_safe=True)
    with postgres, PrivateKafkaCluster(work / "kafka") as kafka:
        report = run(kafka, postgres, work, args.seconds, args.serve, rng, kinds)
    for name, value in report:
        print(f"{name:<42} {value}")


def run(kafka: PrivateKafkaCluster, postgres: PrivatePostgres, work: Path, seconds: float,
        instances: int, rng: random.Random, kinds: list[str]) -> list[tuple[str, Any]]:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka.bootstrap, topics, PARTITIONS, replication_factor=3)
    env = {
        "GIFTCARDS_DATA_DIR": str(work / "var"),
        "GIFTCARDS_DATABASE_URL": postgres.url,
        "GIFTCARDS_SECRET_KEY": SECRET,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": str(PARTITIONS),
        "GIFTCARDS_REPLICATION_FACTOR": "3",
        "GIFTCARDS_RELAY_LEASE_SECONDS": str(LEASE_S),
    }
    waves = int(seconds / WAVE_PAUSE_S) + 1
    codes = purchase_codes(env, waves * 3, tag="chaos")
    serves = [ServiceProcess(["serve", "--instance-id", f"chaos-{n}"], env,
                             work / f"serve-{n}.log") for n in range(instances)]
    for serve in serves:
        serve.start()
    ids: Counter[str] = Counter()  # inputs per message id
    done = threading.Event()

    def load() -> None:
        """Orders, payments with real codes (a third of them spent twice: double spends),
        order retries under new ids and exact duplicates, wave after wave."""
        for wave in range(waves):
            mine = codes[wave * 3 : wave * 3 + 3]
            ids.update(produce_checkout_load(kafka.bootstrap, topics, WAVE, seed=wave,
                                             codes=[*mine, mine[0]] if mine else []))
            time.sleep(WAVE_PAUSE_S)
        done.set()

    faults: list[tuple[str, float, float]] = []  # (kind, hit, back: the fault's end)
    loader = threading.Thread(target=load, daemon=True)
    started = time.monotonic()
    loader.start()
    while not any("checkout batch" in s.log_text() for s in serves):
        assert time.monotonic() - started < 300, [s.log_tail() for s in serves]
        time.sleep(0.5)
    # Lag is sampled all along, so faults land at their moments whatever the recovery of
    # the one before (a recovery measured after the load ended would measure the load's end).
    sampler = LagSampler(env)
    sampler.start()
    # The cards bought before `serve` started are a backlog the relay publishes first; the
    # steady lag (what the load keeps in flight without faults) is sampled once it is gone.
    calm = sampler.wait_for(lambda relay, checkout: relay <= CALM and checkout <= CALM,
                            after=time.monotonic(), timeout=seconds / 3) or time.monotonic()
    time.sleep(STEADY_S)
    moments = sorted(rng.uniform(0.3, 0.75) * seconds for _ in kinds)
    kinds = list(kinds)
    rng.shuffle(kinds)
    refusals: list[str] = []  # what each instance started with a skewed clock said
    for at, kind in zip(moments, kinds, strict=True):
        time.sleep(max(0.0, started + at - time.monotonic()))
        hit = time.monotonic()
        if kind == "broker":
            node = kafka.leader_of(topics.events, rng.randrange(PARTITIONS))
            kafka.kill(node)
            time.sleep(10)
            kafka.start_node(node)
        elif kind == "serve":
            victim = rng.choice(serves)
            victim.kill()
            time.sleep(5)
            victim.start()
        elif kind == "frozen":
            victim = rng.choice(serves)
            victim.freeze()
            time.sleep(FROZEN_S)
            victim.thaw()
        elif kind == "skewed":
            victim = rng.choice(serves)
            victim.kill()
            refusals.append(skewed_start(victim, env, work))
            victim.start()
        else:
            postgres.restart(kill=False)
        faults.append((kind, hit, time.monotonic()))
    loader.join(seconds * 3 + 120)
    load_end = time.monotonic()
    drained = sampler.wait_for(lambda relay, checkout: relay == 0 and checkout == 0,
                               after=load_end, timeout=300)
    sampler.stop()
    settle_deadline = time.monotonic() + 300
    while (problems := consistency_problems(env, kafka.bootstrap, topics, message_ids=ids)) \
            and time.monotonic() < settle_deadline:
        time.sleep(2)
    latencies = reply_latencies(kafka.bootstrap, topics)
    for serve in serves:
        serve.terminate()
    lost = sum("is stored but not on the topic" in p or "no reply" in p for p in problems)
    twice = sum(("published" in p and "times" in p) or "replies" in p for p in problems)
    report: list[tuple[str, Any]] = [
        ("load seconds / serve instances", f"{seconds:.0f} / {instances}"),
        ("messages sent (message ids)", len(ids)),
        ("faults injected", ", ".join(k for k, _, _ in faults)),
        ("lost (events not published, replies missing)", lost),
        ("duplicated (events or replies)", twice),
        ("double redemptions", sum("redeemed" in p for p in problems)),
        ("replies missing", sum("no reply" in p for p in problems)),
        ("views = rebuild", not any(p.startswith("view ") for p in problems)),
        ("all problems", len(problems)),
        ("reply latency p50 / p99 (ms)", percentiles(latencies)),
    ]
    steady = sampler.steady(since=calm, until=faults[0][1] if faults else load_end)
    report.append(("steady lag before faults (relay / checkout, max)",
                   f"{steady[0]} / {steady[1]}"))
    for kind, hit, back in faults:
        # Recovered: the first sample after the fault's end at or under the steady lag.
        again = sampler.first(lambda r, c: r <= steady[0] and c <= steady[1], after=back)
        report.append((f"back to steady lag after {kind} (s)",
                       "not before the load ended" if again is None or again > load_end
                       else f"{again - hit:.1f}"))
    report.append(("zero lag after the load ended (s)",
                   "not within 300 s" if drained is None else f"{drained - load_end:.1f}"))
    report += [("skewed start refused", refusal) for refusal in refusals]
    report += [(f"problem {n}", p) for n, p in enumerate(problems[:10])]
    return report


def skewed_start(victim: ServiceProcess, env: dict[str, str], work: Path) -> str:
    """`victim`'s command started with its wall clock an hour behind: it must exit, naming the
    measured offset, before taking a lease or recording an event. Its last log line."""
    skewed = ServiceProcess(victim.args, {**env, **FAKETIME_ENV}, work / "skewed.log",
                            prefix=HOUR_BEHIND)
    skewed.start()
    deadline = time.monotonic() + SKEWED_EXIT_TIMEOUT_S
    while skewed.alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    if skewed.alive():
        skewed.kill()
        return f"NOT REFUSED: still running after {SKEWED_EXIT_TIMEOUT_S} s"
    lines = skewed.log_text(current_run=True).strip().splitlines()
    return f"exit {skewed.exit_code()}: {lines[-1] if lines else '(no output)'}"


class LagSampler(threading.Thread):
    """Relay lag and checkout consumer lag, sampled about every second (one service built
    once; a sample that fails while the database restarts is skipped)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.samples: list[tuple[float, int, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        service = build(load_settings(self.env), create_tables=False)
        try:
            while not self.stopping.is_set():
                try:
                    now = status(service, None)
                    self.samples.append((time.monotonic(), int(now["relay"]["lag"]),
                                         int(now["consumers"]["checkout"]["lag"])))
                except Exception:  # the fault is still on (database restarting): ask again
                    pass
                self.stopping.wait(SAMPLE_S)
        finally:
            service.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)

    def steady(self, since: float, until: float) -> tuple[int, int]:
        """The largest lag of the samples from `since` to the first fault (at least 1 each:
        the load is always a wave in flight)."""
        before = [(r, c) for t, r, c in self.samples if since <= t < until] or [(1, 1)]
        return max(1, max(r for r, _ in before)), max(1, max(c for _, c in before))

    def first(self, ok: Callable[[int, int], bool], after: float) -> float | None:
        return next((t for t, r, c in list(self.samples) if t >= after and ok(r, c)), None)

    def wait_for(self, ok: Callable[[int, int], bool], after: float,
                 timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (found := self.first(ok, after)) is not None:
                return found
            time.sleep(SAMPLE_S)
        return None


def reply_latencies(bootstrap: str, topics: Topics) -> list[float]:
    """Per message id: its first reply's timestamp minus its first input's (ms, both set by
    the producers at send time)."""
    sent = first_timestamps(bootstrap, topics.checkout)
    replied = first_timestamps(bootstrap, topics.results)
    return sorted(replied[m] - sent[m] for m in replied if m in sent)


def first_timestamps(bootstrap: str, topic: str) -> dict[str, float]:
    import orjson

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        first: dict[str, float] = {}
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    try:
                        message_id = str(orjson.loads(record.value)["message_id"])
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        continue
                    first.setdefault(message_id, record.timestamp)
        return first
    finally:
        consumer.close()


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    def pick(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return f"{pick(0.5):.0f} / {pick(0.99):.0f}"


if __name__ == "__main__":
    main()
