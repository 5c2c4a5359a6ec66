"""How much the WebSocket relay adds to a round trip (make bench; not in the default suite).

Direct to the test exchange vs through the sidecar, on loopback: a public frame (``spot.ping``,
passed unchanged) and a signed trading-API call (``spot.order_status``, parsed, decided, signed
with HMAC, verified by the exchange). Prints the medians.
"""

from __future__ import annotations

import json
import statistics
import time

import aiohttp
import pytest

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ws import recv_json, ws_bench

ROUNDS = 500
pytestmark = pytest.mark.slow


async def _rounds(url: str, frame: str, wanted: str) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for _ in range(ROUNDS):
            start = time.perf_counter()
            await ws.send_str(frame)
            await recv_json(ws, lambda d: wanted in json.dumps(d))
            out.append(time.perf_counter() - start)
    return out


async def test_what_the_relay_adds_to_a_websocket_round_trip(exchange: RunningExchange) -> None:
    async with ws_bench(exchange, {"bot": "full-trading"}) as bench:
        ping = '{"time": 1, "channel": "spot.ping"}'
        status = json.dumps(
            {
                "time": 1,
                "channel": "spot.order_status",
                "event": "api",
                "payload": {
                    "req_id": "b",
                    "req_param": {"order_id": "1", "currency_pair": "BTC_USDT"},
                },
            }
        )
        direct = _median(
            await _rounds(exchange.url.replace("http", "ws") + "/ws/v4/", ping, "pong")
        )
        relayed = _median(await _rounds(bench.ws_url("bot"), ping, "pong"))
        signed = _median(await _rounds(bench.ws_url("bot"), status, "spot.order_status"))
    print(
        f"\nmedian over {ROUNDS} round trips: spot.ping direct {direct:.3f} ms, through the "
        f"sidecar {relayed:.3f} ms; signed spot.order_status through the sidecar {signed:.3f} ms"
    )
    assert relayed < direct + 5 and signed < 20


def _median(values: list[float]) -> float:
    return statistics.median(values) * 1000
