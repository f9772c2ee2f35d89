"""The bench's open-loop load: arrivals on a clock, latency from when each was due, so a slow
server's queue shows in the percentiles (no coordinated omission). Run on a virtual clock: an
event loop whose waits advance time instead of sleeping."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any

from bench import results
from bench.load import due, open_loop, percentile


class _VirtualSelector(selectors.SelectSelector):
    """No file descriptor ever becomes ready: a wait of `timeout` is time passing."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise AssertionError("nothing scheduled: the load would wait forever")
        self.now += timeout
        return []


def on_virtual_clock(coroutine: Coroutine[Any, Any, Any]) -> Any:
    selector = _VirtualSelector()
    loop = asyncio.SelectorEventLoop(selector)
    loop.time = lambda: selector.now  # type: ignore[method-assign]
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def served(count: int, rate: float, connections: int, service: float) -> tuple[list[float], float]:
    """Latencies (from due time, in arrival order) of a server taking `service` s per request."""
    latencies: dict[int, float] = {}

    async def run() -> float:
        loop = asyncio.get_running_loop()

        async def send(connection: object, index: int, at: float) -> None:
            await asyncio.sleep(service)
            latencies[index] = loop.time() - at

        return await open_loop(count, rate, [object() for _ in range(connections)], send)

    seconds = on_virtual_clock(run())
    return [round(latencies[i], 6) for i in range(count)], round(seconds, 6)


def test_arrivals_are_due_at_a_fixed_rate_from_the_start() -> None:
    assert [due(10.0, i, 100.0) for i in range(4)] == [10.0, 10.01, 10.02, 10.03]


def test_below_capacity_each_latency_is_the_service_time() -> None:
    # 2 connections of 30 ms each serve 66/s: 10 arrivals/s never queue.
    latencies, seconds = served(count=5, rate=10.0, connections=2, service=0.030)
    assert latencies == [0.030] * 5
    assert seconds == 0.430  # the last arrival due at 0.4 s, answered 30 ms later


def test_above_capacity_the_queue_counts_from_each_arrivals_due_time() -> None:
    # One connection of 30 ms serves 33/s; arrivals every 10 ms wait for it. A closed loop
    # would report 30 ms for each; counted from the due time they grow by 20 ms per arrival.
    latencies, seconds = served(count=5, rate=100.0, connections=1, service=0.030)
    assert latencies == [0.030, 0.050, 0.070, 0.090, 0.110]
    assert seconds == 0.150


def test_arrivals_do_not_wait_for_answers_to_be_sent() -> None:
    # 4 connections: arrivals 10 ms apart each start on time although each takes 35 ms.
    latencies, _ = served(count=8, rate=100.0, connections=4, service=0.035)
    assert latencies == [0.035] * 8


def test_percentiles_take_the_nearest_rank_below() -> None:
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 0.5) == 51.0
    assert percentile(ordered, 0.99) == 100.0
    assert percentile([7.0], 0.99) == 7.0


def test_check_names_an_open_loop_tail_latency_above_its_ceiling() -> None:
    measures = {name: {"p99_ms": 10.0} for name, _ in results.P99_MS}
    measures[results.OPEN_PAIRS] = {"p99_ms": 75.0}
    measures[results.OPEN_LOOKUPS] = {"p99_ms": 19.0}
    failed = results.failures({"ratios": [], "p99": results.latencies(measures)})
    assert failed == [f"p99 {results.OPEN_PAIRS} = 75.0 ms, above its ceiling 50 ms"]
