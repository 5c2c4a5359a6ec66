"""An open-loop paced HTTP/1.1 client: every request is recorded, none is skipped.

Request ``i`` is sent at ``t0 + i / rate`` whatever happened to the ones before it: sending never
waits for an answer (a request finding every kept-alive connection busy opens a new one), so a
slow answer cannot hold back the requests behind it, and every request's latency is recorded,
from its write to the last byte of its answer (no coordinated omission, unlike wrk's averages).
The event loop's timers are millisecond-grained, so a request may leave up to ~1 ms after its
slot; ``lag_us`` reports how late they left, and latency is measured from the actual write.

    python bench/paced.py URL --rate 200 --seconds 5 [--header 'K: V'] [--cafile ca.pem]

Prints one JSON object: the latencies in microseconds, sorted, and the error count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import httptools


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail()

    def _fail(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection lost"))


async def run(
    url: str, rate: float, seconds: float, headers: list[str], cafile: str | None
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tls = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = "".join(f"{h}\r\n" for h in headers)
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}\r\n".encode()
    loop = asyncio.get_running_loop()
    idle: list[_Conn] = []
    latencies: list[float] = []
    errors = 0

    async def connect() -> _Conn:
        _, conn = await loop.create_connection(
            _Conn, host, port, ssl=tls, server_hostname=host if tls else None
        )
        return conn

    lags: list[float] = []

    async def one(due: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else await connect()
        conn.done = loop.create_future()
        assert conn.transport is not None
        sent = time.perf_counter()
        lags.append(sent - due)
        conn.transport.write(request)
        try:
            status = await conn.done
        except ConnectionError:
            errors += 1
            return
        latencies.append(time.perf_counter() - sent)
        if status != 200:
            errors += 1
        if not conn.lost:
            idle.append(conn)

    for _ in range(4):  # warm connections, not measured
        conn = await connect()
        conn.done = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(request)
        await conn.done
        idle.append(conn)
    total = int(rate * seconds)
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 30)
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    latencies.sort()
    lags.sort()
    return {
        "sent": total,
        "errors": errors,
        "lag_us_p50": round(lags[len(lags) // 2] * 1e6, 1) if lags else 0.0,
        "latencies_us": [round(x * 1e6, 1) for x in latencies],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--cafile")
    args = ap.parse_args()
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # the bench installs the [fast] extra; this is for running it alone
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        out = runner.run(run(args.url, args.rate, args.seconds, args.header, args.cafile))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
