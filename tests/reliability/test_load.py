"""Load against a real `gate-sidecar serve` process (so its RSS is its own) and the verifying
exchange: stalled connections that must not hurt anyone else, then keep-alive load in which every
request must be answered and memory must stay flat.

`make test` runs short versions (150 connections, a few seconds); `make soak` the figures the issue
asks for: 1,000 stalled connections; 1,000 keep-alive connections across 3 keys for 30 s and on
to 100,000 requests, RSS at 10,000 and at 100,000 requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sidecar.runtime.sites import raise_open_files
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import exchange_keys
from tests.reliability.harness import SOAK, record_figure, size
from tests.sync import eventually

KEYS = {"a": "read-only", "b": "read-only", "c": "read-only"}


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    urls: dict[str, str]
    admin: str

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert match is not None
        return int(match[1]) / 1024


@contextlib.asynccontextmanager
async def serve(
    exchange: RunningExchange, tmp_path: Path, server: dict[str, Any]
) -> AsyncIterator[Process]:
    entries, environ, _ = exchange_keys(exchange, KEYS)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "upstream": {"base_url": exchange.url, "timeout_s": 30},
                "admin": {"listen": "127.0.0.1:0"},
                "clock": {"sync": False},
                "server": server,
                "keys": [{"listen": "127.0.0.1:0", **e} for e in entries],
            }
        )
    )
    out = tmp_path / "sidecar.log"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", "serve", "--config", str(config),
            env={**os.environ, **environ}, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        urls, admin = await _wait_open(out, len(KEYS))
        yield Process(proc, urls, admin)
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _wait_open(out: Path, keys: int) -> tuple[dict[str, str], str]:
    """The listeners' URLs, from the process's log lines once every one has opened."""
    urls: dict[str, str] = {}
    admin: list[str] = []

    def all_open() -> bool:
        urls.clear()
        admin.clear()
        for line in out.read_text().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if doc.get("msg") == "key listener open":
                    urls[doc["key"]] = doc["listen"]
                elif doc.get("msg") == "admin listener open":
                    admin.append(doc["listen"])
        return bool(admin) and len(urls) == keys

    await eventually(all_open, 20, "every listener open")
    return urls, admin[0]


async def _latencies(http: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        async with http.get(url) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append(time.perf_counter() - started)
    return out


@pytest.mark.timeout(600 if SOAK else 120)
async def test_stalled_connections_leave_other_keys_and_admin_answering_and_are_closed_by_deadline(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    stalled_n = size(150, 1000)
    deadline = 3.0 if SOAK else 2.0
    raise_open_files(stalled_n * 2 + 512)
    limits = {"header_timeout_s": deadline, "idle_timeout_s": deadline, "max_connections": 600}
    async with serve(exchange, tmp_path, limits) as sp, aiohttp.ClientSession() as http:
        quiet = sp.urls["c"] + "/api/v4/spot/accounts"
        baseline = await _latencies(http, quiet, 50)
        rss_before = sp.rss_mb()
        stalled = []
        for i in range(stalled_n):
            host, port = sp.urls["ab"[i % 2]].removeprefix("http://").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            if i % 2 == 0:  # half send a head that never ends, half send nothing at all
                writer.write(
                    b"GET /api/v4/spot/accounts HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 200 + b"\r\n"
                )
            stalled.append((reader, writer))
        opened = time.perf_counter()
        under_load = await _latencies(http, quiet, 50)
        health = await _latencies(http, sp.admin + "/healthz", 20)
        rss_stalled = sp.rss_mb()

        async def closed_after(reader: asyncio.StreamReader) -> float:
            await asyncio.wait_for(reader.read(), timeout=deadline + 10)
            return time.perf_counter() - opened

        closes = await asyncio.gather(*(closed_after(r) for r, _ in stalled))
        for _, writer in stalled:
            writer.close()
    record_figure("stalled_connections", stalled_n)
    record_figure("stalled_quiet_key_p50_ms_before", round(statistics.median(baseline) * 1000, 2))
    record_figure("stalled_quiet_key_p50_ms_during", round(statistics.median(under_load) * 1000, 2))
    record_figure("stalled_quiet_key_max_ms_during", round(max(under_load) * 1000, 2))
    record_figure("stalled_admin_healthz_max_ms", round(max(health) * 1000, 2))
    record_figure(
        "stalled_rss_mb", {"before": round(rss_before, 1), "stalled": round(rss_stalled, 1)}
    )
    record_figure("stalled_last_closed_s", round(max(closes), 2))
    assert statistics.median(under_load) < max(0.05, 5 * statistics.median(baseline))
    assert max(health) < 1.0
    assert rss_stalled < 150
    assert max(closes) < deadline + 3.0  # each one closed by its deadline (plus scheduling slack)


@pytest.mark.timeout(900 if SOAK else 120)
async def test_keep_alive_load_answers_every_request_and_memory_stays_flat(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    connections = size(150, 1000)
    duration_s = size(3, 30)
    first_mark, last_mark = size(1000, 10_000), size(0, 100_000)
    max_s = 120 if not SOAK else 600
    raise_open_files(connections * 2 + 512)
    async with serve(exchange, tmp_path, {"max_connections": 1024}) as sp:
        urls = [sp.urls[k] + "/api/v4/spot/accounts" for k in KEYS]
        done, failed = [0], [0]
        rss: dict[str, float] = {}
        started = time.perf_counter()

        def keep_going() -> bool:
            elapsed = time.perf_counter() - started
            return elapsed < max_s and (elapsed < duration_s or done[0] < last_mark)

        async def worker(http: aiohttp.ClientSession, url: str) -> None:
            while keep_going():
                try:
                    async with http.get(url) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                done[0] += 1
                failed[0] += not ok
                if done[0] == first_mark:
                    rss["first"] = sp.rss_mb()

        per_key = connections // len(urls)
        sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=per_key)) for _ in urls
        ]
        try:
            await asyncio.gather(
                *(worker(s, u) for s, u in zip(sessions, urls, strict=True) for _ in range(per_key))
            )
        finally:
            for s in sessions:
                await s.close()
        elapsed = time.perf_counter() - started
        rss["last"] = sp.rss_mb()
    record_figure("load_connections", connections)
    record_figure("load_requests", done[0])
    record_figure("load_failed", failed[0])
    record_figure("load_seconds", round(elapsed, 1))
    record_figure("load_requests_per_s", round(done[0] / elapsed))
    record_figure("load_rss_mb", {k: round(v, 1) for k, v in rss.items()})
    assert failed[0] == 0 and done[0] >= first_mark
    if SOAK:
        assert done[0] >= last_mark
        assert rss["last"] <= rss["first"] * 1.10
    assert rss["last"] < 150
