"""The lean path on uvloop (what `serve` runs on when uvloop is installed): the listener, a
WebSocket session on it, TLS and the forwarder's resend rule, each once on a uvloop loop."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import uvloop
from aiohttp import web

from sidecar.devtools.exchange import ExchangeState, create_exchange_app
from sidecar.errors import StaleConnection
from sidecar.proxy.forwarder import UpstreamConfig, deliver
from sidecar.proxy.lean_forwarder import LeanForwarder
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ws import recv_json, ws_bench
from tests.raw_upstream import Fault, RawUpstream, Reply
from tests.test_forward_contract import _req, _stamped
from tests.test_lean_listener import (
    PATH,
    _tls_pair,
    extra_listener,
    lean_sidecar,
    read_response,
)


async def _listener_scenario(tmp: Path) -> None:
    server_ctx, ca_file = _tls_pair(tmp)
    client_ctx = ssl.create_default_context(cafile=str(ca_file))
    async with (
        lean_sidecar() as lean,
        extra_listener(lean, tls=server_ctx) as tls_listener,
        aiohttp.ClientSession() as http,
    ):
        reader, writer = await lean.connect()
        for _ in range(2):
            writer.write(f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode())
            assert (await read_response(reader))[0] == 200
        writer.close()
        tls_url = tls_listener.url.replace("http://", "https://") + PATH
        async with http.get(tls_url, ssl=client_ctx) as resp:
            assert resp.status == 200


async def _websocket_scenario() -> None:
    state = ExchangeState()
    runner = web.AppRunner(create_exchange_app(state), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    exchange = RunningExchange(state, f"http://127.0.0.1:{runner.addresses[0][1]}")
    try:
        async with (
            ws_bench(exchange, {"full": "full-trading"}) as wb,
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("full")) as ws,
        ):
            await ws.send_str(
                '{"time": 5, "channel": "spot.tickers", "event": "subscribe", '
                '"payload": ["BTC_USDT"]}'
            )
            assert (await recv_json(ws))["result"] == {"status": "success"}
    finally:
        await runner.cleanup()


async def _forwarder_scenario() -> None:
    upstream = RawUpstream()
    await upstream.start()
    forwarder = LeanForwarder(UpstreamConfig(base_url=upstream.url, timeout_s=2))
    try:
        await forwarder.send(_req())
        upstream.script = lambda seen, before: Fault.DROP if seen.conn_seq else Reply()
        first, build = _stamped("GET")
        assert (await deliver(forwarder, first, build)).status == 200
        assert [s.header("Timestamp") for s in upstream.seen[1:]] == ["0", "1"]
        upstream.script = lambda seen, before: Fault.DROP  # on the resend's kept-alive connection
        try:
            await forwarder.send(_req("POST", body=b"{}"))
            raise AssertionError("a reused connection dropped under a POST must fail")
        except StaleConnection:
            pass
    finally:
        await forwarder.close()
        await upstream.stop()


def test_the_lean_listener_serves_and_speaks_tls_on_uvloop(tmp_path: Path) -> None:
    uvloop.run(_listener_scenario(tmp_path))


def test_a_websocket_session_runs_on_the_listener_on_uvloop() -> None:
    uvloop.run(_websocket_scenario())


def test_the_lean_forwarder_keeps_the_resend_rule_on_uvloop() -> None:
    uvloop.run(_forwarder_scenario())


def test_these_scenarios_really_run_on_uvloop() -> None:
    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert uvloop.run(loop_type()).startswith("uvloop")
