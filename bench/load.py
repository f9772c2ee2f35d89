"""The HTTP load generator, in its own process: N keep-alive clients, latencies per request.

`python -m bench.load` reads a JSON job on stdin and prints a JSON result on stdout:
{"port", "key", "clients", "kind": "pairs"|"lookup"|"ping"|"constant", "codes": [...],
"count", "run"}, and "rate" for an open-loop run.

Closed loop (no "rate"): each client sends its next request when its last one is answered, so a
slow server slows the arrivals and hides its queue. Open loop ("rate", arrivals per second):
arrival i is due at start + i / rate whatever the answers, taken by the first free one of the
clients' connections, and its latency counts from when it was DUE, so time spent waiting for a
connection is counted (no coordinated omission). A pair's authorize counts from its arrival,
its capture from when it was sent, right after the authorize's answer.
A bare asyncio HTTP/1.1 client: a full client library would spend more CPU per request than
the server it measures, on the same cores."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.cpu import machine_busy


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 key: str) -> None:
        self.reader, self.writer, self.key = reader, writer, key

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        raw = b"" if body is None else orjson.dumps(body)
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


def due(start: float, index: int, rate: float) -> float:
    """When arrival `index` is to be sent: on the clock, whatever became of earlier ones."""
    return start + index / rate


def percentile(ordered: list[float], fraction: float) -> float:
    """The value at `fraction` of a sorted list (the nearest rank below)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def open_loop(count: int, rate: float, connections: list[Any],
                    send: Callable[[Any, int, float], Awaitable[None]]) -> float:
    """Arrival i due at `due(start, i, rate)` on the event loop's clock, sent by
    `send(connection, i, due)` on the first free connection; the seconds until the last one is
    answered. `send` measures from the due time it is given."""
    loop = asyncio.get_running_loop()
    free: asyncio.Queue[Any] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)

    async def arrival(index: int, at: float) -> None:
        connection = await free.get()
        try:
            await send(connection, index, at)
        finally:
            free.put_nowait(connection)

    start = loop.time()
    pending = []
    for index in range(count):
        at = due(start, index, rate)
        if (wait := at - loop.time()) > 0:
            await asyncio.sleep(wait)
        pending.append(asyncio.create_task(arrival(index, at)))
    await asyncio.gather(*pending)
    return loop.time() - start


async def main(job: dict[str, Any]) -> dict[str, Any]:
    count, kind, codes, run = job["count"], job["kind"], job.get("codes", []), job["run"]
    latencies: list[float] = []
    failures: list[str] = []
    next_index = iter(range(count))

    clock = asyncio.get_running_loop().time

    async def timed(conn: Connection, method: str, path: str, body: Any = None,
                    since: float | None = None) -> None:
        started = clock() if since is None else since
        status, answer = await conn.call(method, path, body)
        latencies.append(clock() - started)
        if status != 200 and len(failures) < 5:
            failures.append(f"{path}: {status} {answer[:200]!r}")

    async def send(conn: Connection, i: int, since: float | None = None) -> None:
        if kind == "pairs":
            order = f"/v1/checkouts/bench-{run}-{i}"
            await timed(conn, "POST", order + "/authorize",
                        {"code": codes[i], "market": "FR", "order_total": 3000}, since)
            await timed(conn, "POST", order + "/capture")
        elif kind == "lookup":
            await timed(conn, "POST", "/v1/cards/lookup",
                        {"code": codes[i % len(codes)], "market": "FR"}, since)
        elif kind == "ping":  # the lookup's request, answered with a constant
            await timed(conn, "POST", "/v1/ping",
                        {"code": codes[i % len(codes)], "market": "FR"}, since)
        else:
            await timed(conn, "GET", "/health/live", since=since)

    async def connect() -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", job["port"])
        return Connection(reader, writer, job["key"])

    async def client() -> None:
        conn = await connect()
        for i in next_index:
            await send(conn, i)
        conn.writer.close()

    started = time.perf_counter()
    with machine_busy() as busy:  # the generator's own work included
        if job.get("rate"):
            connections = [await connect() for _ in range(job["clients"])]
            seconds = await open_loop(count, job["rate"], connections, send)
            for conn in connections:
                conn.writer.close()
        else:
            await asyncio.gather(*(client() for _ in range(job["clients"])))
            seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "count": count, "requests": len(latencies), "seconds": seconds,
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "failures": failures, "busy": busy(),
    }


if __name__ == "__main__":
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(main(orjson.loads(sys.stdin.buffer.read())))))
