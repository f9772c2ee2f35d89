"""Baseline (c'): a raw kafka-python consumer that COPYs every envelope of a topic into one
PostgreSQL table, a transaction per poll: what a rebuild from Kafka costs at the database's
pace, with nothing of ours in between (the views' rebuild is judged against it)."""

from __future__ import annotations

import time

import psycopg
from kafka import TopicPartition

from projections import topicreader

NAME = "c'. raw consumer COPY into PostgreSQL"
TABLE = "raw_envelopes"


def copy_consume(bootstrap: str, topic: str, url: str) -> tuple[int, float]:
    """(envelopes copied, seconds): the rebuild's consumer settings (read committed, polls of
    the same size), each poll's records COPYed with their positions in one transaction."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (partition integer NOT NULL, "
                     "position bigint NOT NULL, envelope jsonb NOT NULL, "
                     "PRIMARY KEY (partition, position))")
        started = time.monotonic()
        kc = topicreader.consumer(bootstrap, None)
        copied = 0
        try:
            parts = [TopicPartition(topic, p) for p in kc.partitions_for_topic(topic) or ()]
            kc.assign(parts)
            kc.seek_to_beginning(*parts)
            ends = kc.end_offsets(parts)
            while any(kc.position(tp) < ends[tp] for tp in parts):
                polled = kc.poll(timeout_ms=500)
                if not polled:
                    continue
                with conn.transaction(), conn.cursor().copy(
                    f"COPY {TABLE} (partition, position, envelope) FROM STDIN"
                ) as copy:
                    for tp, records in polled.items():
                        for record in records:
                            copy.write_row((tp.partition, record.offset,
                                            record.value.decode()))
                            copied += 1
        finally:
            kc.close()
        return copied, time.monotonic() - started
