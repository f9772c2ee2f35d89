"""Section (d): relay events/s, publishing what section (b) stored."""

from __future__ import annotations

from bench.common import Ctx, Row, timed
from infra.bootstrap import build
from infra.config import load_settings
from infra.kafka.relay import Relay


def run(ctx: Ctx) -> list[Row]:
    env = ctx.checkout_store or None
    if env is None:
        return []
    service = build(load_settings(env))
    topics = ctx.topics()
    relay = Relay(service, ctx.bootstrap, topics, transactional_id=f"{topics.prefix}relay")
    with timed() as elapsed:
        published = relay.drain()
    relay.close()
    service.close()
    return [Row("d. relay events", published, elapsed(), "transactional, read_committed")]
