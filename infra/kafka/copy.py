"""The second copy: card events on `giftcard.events` compared with the stored events."""

from __future__ import annotations

from typing import Any

import orjson
from kafka import TopicPartition

from application.ports import Pseudonyms
from infra.chains import CARD_TOPIC_PREFIX
from infra.envelope import card_record_as_published_now, stored_envelope
from infra.kafka import clients
from infra.kafka.clients import Link

Problem = dict[str, Any]


class TopicMissingError(LookupError):
    """The topic holding the published copy does not exist (never served, or deleted)."""


def published_cards(bootstrap: Link, topic: str, poll_ms: int = 1000) -> dict[tuple[str, int], Any]:
    """Every committed card envelope on the topic, by (card id, version); TopicMissingError if
    there is no such topic (an empty copy would compare as nothing published)."""
    consumer = clients.consumer(bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:  # unknown to the cluster (kafka-python answers an empty set)
            raise TopicMissingError(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        found: dict[tuple[str, int], Any] = {}
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            for records in consumer.poll(timeout_ms=poll_ms).values():
                for record in records:
                    envelope = orjson.loads(record.value)
                    if envelope.get("card_id"):
                        found[(envelope["card_id"], envelope["card_version"])] = envelope
        return found
    finally:
        consumer.close()


def compare(
    recorder: Any, mapper: Any, published: dict[tuple[str, int], Any], pseudonyms: Pseudonyms
) -> list[Problem]:
    """Stored card events against their published copies, up to the last one published: any
    field that differs, any event on one side only."""
    problems: list[Problem] = []
    last = max((e["position"] for e in published.values()), default=0)
    unseen = dict(published)
    start = 1
    while start <= last:
        page = recorder.select_notifications(start, 1000, stop=last)
        if not page:
            break
        for n in page:
            if not n.topic.startswith(CARD_TOPIC_PREFIX):
                continue
            mine = stored_envelope(mapper, n, pseudonyms)
            if mine is None:  # chain bookkeeping (HistorySealed) is not published
                continue
            key = (mine["card_id"], mine["card_version"])
            theirs = orjson.loads(orjson.dumps(unseen.pop(key, None)))
            if theirs is not None:  # a record from before the pseudonyms: compared as now
                theirs = card_record_as_published_now(theirs, pseudonyms)
            if theirs is None:
                problems.append({"card_id": key[0], "version": key[1],
                                 "problem": "stored event not on giftcard.events: inserted"})
                continue
            mine = orjson.loads(orjson.dumps(mine))
            differ = sorted(
                {k for k in mine if k != "data" and mine[k] != theirs.get(k)}
                | {f"data.{k}" for k in set(mine["data"]) | set(theirs.get("data", {}))
                   if mine["data"].get(k) != theirs.get("data", {}).get(k)}
            )
            if differ:
                problems.append({"card_id": key[0], "version": key[1],
                                 "problem": "differs from its copy on giftcard.events: "
                                            + ", ".join(differ)})
        start = page[-1].id + 1
    for card, version in sorted(unseen):
        problems.append({"card_id": card, "version": version,
                         "problem": "on giftcard.events but not in the store: deleted"})
    return problems
