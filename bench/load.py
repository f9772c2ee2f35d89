"""The HTTP load generator, in its own process: N keep-alive clients, latencies per request.

`python -m bench.load` reads a JSON job on stdin and prints a JSON result on stdout:
{"port", "key", "clients", "kind": "pairs"|"lookup"|"ping"|"constant", "codes": [...],
"count", "run"}.
A bare asyncio HTTP/1.1 client: a full client library would spend more CPU per request than
the server it measures, on the same cores."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson


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


async def main(job: dict[str, Any]) -> dict[str, Any]:
    count, kind, codes, run = job["count"], job["kind"], job.get("codes", []), job["run"]
    latencies: list[float] = []
    failures: list[str] = []
    next_index = iter(range(count))

    async def timed(conn: Connection, method: str, path: str, body: Any = None) -> None:
        started = time.perf_counter()
        status, answer = await conn.call(method, path, body)
        latencies.append(time.perf_counter() - started)
        if status != 200 and len(failures) < 5:
            failures.append(f"{path}: {status} {answer[:200]!r}")

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", job["port"])
        conn = Connection(reader, writer, job["key"])
        for i in next_index:
            if kind == "pairs":
                order = f"/v1/checkouts/bench-{run}-{i}"
                await timed(conn, "POST", order + "/authorize",
                            {"code": codes[i], "market": "FR", "order_total": 3000})
                await timed(conn, "POST", order + "/capture")
            elif kind == "lookup":
                await timed(conn, "POST", "/v1/cards/lookup",
                            {"code": codes[i % len(codes)], "market": "FR"})
            elif kind == "ping":  # the lookup's request, answered with a constant
                await timed(conn, "POST", "/v1/ping",
                            {"code": codes[i % len(codes)], "market": "FR"})
            else:
                await timed(conn, "GET", "/health/live")
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(job["clients"])))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "count": count, "requests": len(latencies), "seconds": seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "failures": failures,
    }


if __name__ == "__main__":
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(main(orjson.loads(sys.stdin.buffer.read())))))
