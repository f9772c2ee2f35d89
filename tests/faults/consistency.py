"""The end check of every fault test: store, topics and views tell the same story."""

from __future__ import annotations

import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from dev.services import drop_scratch_database, scratch_database
from infra.bootstrap import Service, build
from infra.config import load_settings
from infra.db import Database
from infra.kafka.topics import Topics
from projections import retention, schema
from projections.config import load_fraud_config
from projections.runner import Projector
from projections.sources import sync_store
from tests.integration.test_relay import read_committed, stored_envelopes


def assert_consistent(
    env: dict[str, str],
    bootstrap: str,
    topics: Topics,
    *,
    message_ids: Mapping[str, int] | set[str] | None,
    settle_timeout: float = 60.0,
) -> None:
    """Store, topics and views agree: every published stored event once on `giftcard.events`
    (read_committed) in per-card order; one reply per input (`message_ids`: the inputs per
    message id, a set when each was sent once); no card redeemed twice; the
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
    env: dict[str, str],
    bootstrap: str,
    topics: Topics,
    *,
    message_ids: Mapping[str, int] | set[str] | None,
) -> list[str]:
    """What assert_consistent checks, once: a list of specific problems, empty if none."""
    service = build(load_settings(env))
    try:
        expected = stored_envelopes(service.app)
        records = read_committed(bootstrap, topics.events)
        problems = event_log_problems(records, expected)
        problems += duplicate_evidence(bootstrap, topics.events, records)
        if message_ids is not None:
            replies = [r[3] for r in read_committed(bootstrap, topics.results)]
            problems += reply_problems(replies, message_ids)
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
        event_id = str(envelope.get("event_id"))
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


def kcat_records(bootstrap: str, topic: str, *, committed: bool) -> list[tuple[int, int, str]]:
    """(partition, offset, event id) of every record of `topic` as kcat (librdkafka, a reader
    independent of kafka-python) returns it: read_committed, or every record written
    (read_uncommitted, aborted transactions included). Debian's kcat (`make kcat`)."""
    level = "read_committed" if committed else "read_uncommitted"
    done = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-X",
         f"isolation.level={level}", "-f", "%p\t%o\t%s\n"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    rows = []
    for line in done.stdout.splitlines():
        if line.strip():
            partition, offset, value = line.split("\t", 2)
            event_id = orjson.loads(value).get("event_id") if value else None  # relay's sweep
            rows.append((int(partition), int(offset), str(event_id)))
    return rows


def duplicate_evidence(
    bootstrap: str, topic: str, records: Iterable[tuple[int, int, bytes, dict[str, Any]]]
) -> list[str]:
    """For each event that kafka-python read more than once: where each copy sits, what kcat
    reads committed and what was written at all. Two committed copies for kcat too: the relay
    (or the broker) published it twice; one: kafka-python showed an aborted copy."""
    copies: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for partition, offset, _, envelope in records:
        copies[str(envelope.get("event_id"))].append((partition, offset))
    twice = {event_id: where for event_id, where in copies.items() if len(where) > 1}
    if not twice:
        return []
    try:
        by_kcat = kcat_records(bootstrap, topic, committed=True)
        written = kcat_records(bootstrap, topic, committed=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"evidence: kcat could not read {topic}: {exc}"]
    lines = []
    for event_id, where in sorted(twice.items()):
        kcat_at = [(p, o) for p, o, e in by_kcat if e == event_id]
        written_at = [(p, o) for p, o, e in written if e == event_id]
        lines.append(f"evidence: event {event_id} read committed at {where} by kafka-python, "
                     f"at {kcat_at} by kcat; written at {written_at}")
    return lines


def reply_problems(
    replies: list[dict[str, Any]], inputs: Mapping[str, int] | set[str]
) -> list[str]:
    """Exactly one reply per input showing a message id (`inputs`: how many inputs carried each
    id; a set when each was sent once): an input sent twice gets the stored reply twice, a
    crash or a frozen instance adds none; the copies of one id's reply are identical."""
    sent = Counter(inputs) if isinstance(inputs, set) else Counter(dict(inputs))
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for reply in replies:
        by_id[str(reply.get("message_id"))].append(reply)
    problems = [f"message {m}: no reply" for m in sorted(set(sent) - set(by_id))]
    problems += [f"reply to unknown message id {m}" for m in sorted(set(by_id) - set(sent))]
    for message_id, copies in sorted(by_id.items()):
        if message_id in sent and len(copies) != sent[message_id]:
            problems.append(f"message {message_id}: {len(copies)} replies to "
                            f"{sent[message_id]} input(s)")
        if any(copy != copies[0] for copy in copies):
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
    # The projector under test creates its views when it starts: until it has, that is a
    # problem to wait out (assert_consistent retries), not an error of the check itself.
    if absent := schema.missing(live):
        live.close()
        return [f"live views not created yet: {', '.join(absent)}"]
    scratch = scratch_database(service.db.url if service.db.is_postgres else None)
    rebuilt = Projector(Database(scratch), load_fraud_config(dict(env)))
    try:
        sync_store(service.app, rebuilt)
        want, got = schema.dump(rebuilt.db), schema.dump(live)
    finally:
        rebuilt.db.close()
        live.close()
        drop_scratch_database(scratch)
    # The fraud-data purge's horizon (P2) is the purge job's own bookkeeping, written by
    # `serve`'s hourly purge, not something an event determines: a rebuild has none.
    got[schema.FRAUD_STATE.name] = [r for r in got.get(schema.FRAUD_STATE.name, [])
                                    if r[0] != retention.HORIZON]
    problems = []
    for table, rows in want.items():
        have = got.get(table, [])
        if have != rows:
            missing = [r for r in rows if r not in have][:3]
            extra = [r for r in have if r not in rows][:3]
            problems.append(f"view {table}: live has {len(have)} rows, the rebuild {len(rows)}; "
                            f"missing {missing}, unexpected {extra}")
    return problems
