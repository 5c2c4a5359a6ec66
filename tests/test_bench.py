"""Latency the sidecar adds: the same signed GET direct to the exchange vs through the sidecar;
the Go signing proxy `make bench` measures the sidecar against signs as Gate verifies; and
bench/path.py, the whole path in process, still drives the real code (not slow: it runs in
`make test`, so a change of the listener or the forwarder cannot leave it broken).

Slow (make bench): bounded to N requests each way, sequential, one keep-alive connection, so the
difference is the hop itself (parse, policy, sign, forward, relay), not queueing.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.fixtures_exchange import RunningExchange, gate_sign
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.sync import eventually

N = 2000
PATH = "/api/v4/futures/usdt/accounts"


def _summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p50, p99 = ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
    return f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, mean {statistics.fmean(ms):.3f} ms"


@pytest.mark.slow
async def test_the_added_latency_of_one_hop_is_measured(exchange: RunningExchange) -> None:
    entry, environ, api_key, secret = env_key("bench", "futures-only")
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], logging={"audit": False})
    direct: list[float] = []
    proxied: list[float] = []
    async with running_sidecar(config, environ) as sidecar, aiohttp.ClientSession() as http:
        for i in range(N):
            headers = gate_sign(api_key, secret, "GET", PATH)
            t0 = time.perf_counter()
            async with http.get(exchange.url + PATH, headers=headers) as resp:
                await resp.read()
            direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            async with http.get(sidecar.url("bench") + PATH) as resp:
                await resp.read()
                assert resp.status == 200, i
            proxied.append(time.perf_counter() - t0)
    added = [p - d for p, d in zip(proxied, direct, strict=True)]
    print(f"\ndirect:  {_summary(direct)}\nsidecar: {_summary(proxied)}")
    print(f"added (paired): p50 {statistics.median(added) * 1000:.3f} ms")
    assert statistics.median(added) < 0.05  # a generous bound: catches a pathological regression


def test_the_whole_path_in_process_relays_gates_answer_and_prints_its_cost() -> None:
    """bench/path.py (make bench's in-process figure) drives the real listener, pipeline and
    forwarder with in-memory transports; it stops with an error unless each answer relayed."""
    script = Path(__file__).resolve().parent.parent / "bench" / "path.py"
    done = subprocess.run(
        [sys.executable, str(script), "--n", "300", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert 0 < got["best_us"] <= got["median_us"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _signs_as_gate_verifies(
    argv: list[str], exchange: RunningExchange, api_key: str, secret: str, port: int
) -> None:
    """Starts a bench proxy (``argv``, listening on ``port``) in front of Gate's verifying
    exchange and sends it a GET, a query to unescape and a POST with a body: each must reach the
    exchange with a signature it accepts."""
    exchange.state.add_key(api_key, secret)
    env = {**os.environ, "GATE_KEY": api_key, "GATE_SECRET": secret}
    proc = await asyncio.create_subprocess_exec(*argv, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def listening() -> bool:
                async with http.get(base + PATH) as resp:
                    assert resp.status == 200, await resp.text()
                    return True

            errors = (aiohttp.ClientConnectionError,)
            await eventually(listening, 20, "the proxy listening", step=0.1, ignoring=errors)
            query = "/api/v4/spot/orders?currency_pair=BTC%5FUSDT&status=open"  # sent as is
            async with http.get(URL(base + query, encoded=True)) as resp:
                assert resp.status == 200, await resp.text()
            order = b'{"currency_pair":"BTC_USDT","side":"buy","amount":"1","price":"1"}'
            async with http.post(
                base + "/api/v4/spot/orders",
                data=order,
                headers={"Content-Type": "application/json"},
            ) as resp:
                assert resp.status < 300, await resp.text()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)
    verdicts = [r.verdict for r in exchange.state.requests]
    assert verdicts[-3:] == ["ok", "ok", "ok"]


@pytest.mark.slow
async def test_the_go_anchor_of_make_bench_signs_as_gate_verifies(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    """bench/goproxy is a fair anchor only if it does the sidecar's job: Gate's verifying
    exchange accepts its signatures (a GET, a query to unescape, a POST with a body)."""
    binary = tmp_path / "goproxy"
    main = Path(__file__).resolve().parent.parent / "bench" / "goproxy" / "main.go"
    build = await asyncio.create_subprocess_exec(
        "go", "build", "-o", str(binary), str(main), env={**os.environ, "GOPROXY": "off"}
    )
    assert await asyncio.wait_for(build.wait(), timeout=300) == 0
    port = _free_port()
    argv = [str(binary), "-listen", f"127.0.0.1:{port}", "-upstream", exchange.url]
    await _signs_as_gate_verifies(argv, exchange, "go-anchor-key", "go-anchor-" + "s" * 54, port)


async def test_the_python_floor_of_make_bench_signs_as_gate_verifies(
    exchange: RunningExchange,
) -> None:
    """bench/floor.py is a fair floor only if it does the signing job the sidecar and the Go
    proxy do: Gate's verifying exchange accepts its signatures (not slow: no build)."""
    script = Path(__file__).resolve().parent.parent / "bench" / "floor.py"
    port = _free_port()
    argv = [sys.executable, str(script), "--listen", f"127.0.0.1:{port}"]
    argv += ["--upstream", exchange.url]
    await _signs_as_gate_verifies(argv, exchange, "floor-key", "floor-secret-" + "s" * 51, port)
