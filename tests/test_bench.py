"""Latency the sidecar adds: the same signed GET direct to the exchange vs through the sidecar.

Slow (make bench): bounded to N requests each way, sequential, one keep-alive connection, so the
difference is the hop itself (parse, policy, sign, forward, relay), not queueing.
"""

from __future__ import annotations

import statistics
import time

import aiohttp
import pytest

from tests.fixtures_exchange import RunningExchange, gate_sign
from tests.fixtures_sidecar import env_key, make_config, running_sidecar

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
