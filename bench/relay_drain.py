"""`python bench/relay_drain.py STORE_URL BOOTSTRAP`: one relay, connected before the clock
starts, drains a kept history's store into new topics; prints {events, seconds} as JSON.
bench.ab's relay side: run by path from another commit's checkout, it imports only what
every commit of the relay has."""

from __future__ import annotations

import os
import sys
import threading
import time

import orjson


def main(store_url: str, bootstrap: str) -> None:
    from bench.projections import PARTITIONS, settings_env
    from infra.bootstrap import build
    from infra.config import load_settings
    from infra.kafka.admin import ensure_topics, verify_topics
    from infra.kafka.relay import Relay
    from infra.kafka.topics import Topics
    from infra.supervisor import retry_until_done

    service = build(load_settings(settings_env(store_url)), create_tables=False)
    topics = Topics(f"ab-relay-{os.getpid()}-{int(time.time())}-")
    ensure_topics(bootstrap, topics, PARTITIONS)
    retry_until_done(threading.Event(), "new topics",
                     lambda: verify_topics(bootstrap, topics, topics.configs()))
    relay = Relay(service, bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    try:
        relay.position  # noqa: B018 - connected, its position read, before the clock starts
        started = time.monotonic()
        events = relay.drain()
        seconds = time.monotonic() - started
    finally:
        relay.close()
        service.close()
    print(orjson.dumps({"events": events, "seconds": seconds}).decode())


if __name__ == "__main__":
    main(*sys.argv[1:3])
