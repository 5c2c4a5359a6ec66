"""Real WebSocket clients, holding only a dummy key and secret, trading through the sidecar.

- gate-ws (the official Python WebSocket SDK, PyPI ``gate-ws``): ``host`` pointed at the sidecar;
- ccxt.pro ``gate``: ``urls['api']['spot']`` and ``urls['api'][swap|future|option][settle]``;
- gateio-api (npm): ``wsUrl``, one client per product (tests/clients/ws_node/ws_steps.mjs).

Each subscribes to private channels, logs in, places and cancels orders over the trading API; a
run passes when the client got its answers *and* every frame that reached the exchange was
signed by the sidecar with the real key (verified there) and carried none of the client's own
credentials, and no frame the client received holds the secret.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gate_ws.client import Configuration, Connection, WebSocketResponse
from gate_ws.futures import (
    FuturesOrderCancelChannel,
    FuturesOrderChannel,
    FuturesOrderPlaceChannel,
    FuturesPositionsChannel,
)
from gate_ws.spot import SpotOrderCancelChannel, SpotOrderChannel, SpotOrderPlaceChannel

from sidecar.devtools.exchange import RecordedFrame
from tests.clients.harness import DUMMY_KEY, DUMMY_SECRET, HERE, run, tool
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ws import WsBench, rotate, rotating_bench, wait_for, ws_bench

# ccxt is imported by the functions that use it, not here: importing it costs each pytest
# worker about 1.8 s at collection, for a handful of tests (marker `ccxt`; `make test-lowest`
# leaves ccxt out and deselects them).

NODE_DIR = HERE / "ws_node"
UID = "10001"


def check_frames(frames: list[RecordedFrame], api_keys: set[str]) -> None:
    """Every signed frame verified with a real key; no client credential reached the exchange."""
    problems = []
    for f in frames:
        if f.verdict not in ("ok", "public"):
            problems.append(f"{f.channel} {f.event}: the exchange said {f.verdict}")
        if f.verdict == "ok" and f.api_key not in api_keys:
            problems.append(f"{f.channel} {f.event}: signed with {f.api_key!r}")
        for junk in (DUMMY_KEY, DUMMY_SECRET):
            if junk in f.text:
                problems.append(f"{f.channel} {f.event}: the client's {junk!r} reached Gate")
    assert frames and not problems, "\n".join(problems)


def signed(frames: list[RecordedFrame], channel: str) -> list[dict[str, Any]]:
    return [json.loads(f.text) for f in frames if f.channel == channel and f.verdict == "ok"]


# -- gate-ws ---------------------------------------------------------------------------------


class GateWsBot:
    """gate-ws as its README shows it: a Connection, channels, callbacks."""

    def __init__(self, app: str, host: str) -> None:
        self.received: list[dict[str, Any]] = []
        self.new = asyncio.Event()
        cfg = Configuration(
            app=app,
            settle="usdt",
            host=host,
            api_key=DUMMY_KEY,
            api_secret=DUMMY_SECRET,
            default_callback=self.on_message,
            max_retry=1,
        )
        self.conn = Connection(cfg)
        self.task = asyncio.create_task(self.conn.run())

    async def on_message(self, conn: Connection, response: WebSocketResponse) -> None:
        self.received.append(json.loads(response.body))
        self.new.set()

    async def answer(self, channel: str, req_id: str) -> dict[str, Any]:
        """Gate's final answer (not the ack) to a trading-API request."""
        async with asyncio.timeout(5):
            while True:
                for doc in self.received:
                    header = doc.get("header") or {}
                    if (
                        header.get("channel") == channel
                        and doc.get("request_id") == req_id
                        and not doc.get("ack")
                    ):
                        return doc
                self.new.clear()
                await self.new.wait()

    async def update(self, channel: str) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                for doc in self.received:
                    if doc.get("channel") == channel and doc.get("event") == "update":
                        return doc
                self.new.clear()
                await self.new.wait()

    async def close(self) -> None:
        self.conn.close()
        await asyncio.wait_for(self.task, 5)


async def test_gate_ws_watches_and_trades_and_survives_a_rotation_without_replay(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    async with rotating_bench(exchange, tmp_path, {"on_rotation": "resume"}) as (bench, path):
        old_key = bench.keys["rot"][0]
        spot = GateWsBot("spot", bench.ws_url("rot"))
        futures = GateWsBot("futures", bench.ws_url("rot", "/v4/ws/usdt"))
        try:
            SpotOrderChannel(spot.conn).subscribe(["BTC_USDT"])
            order = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "1"}
            SpotOrderPlaceChannel(spot.conn).api_request(order, req_id="gw-1")
            placed = (await spot.answer("spot.order_place", "gw-1"))["data"]["result"]
            await spot.update("spot.orders")
            cancel = {"order_id": placed["id"], "currency_pair": "BTC_USDT"}
            SpotOrderCancelChannel(spot.conn).api_request(cancel, req_id="gw-2")
            cancelled = await spot.answer("spot.order_cancel", "gw-2")
            assert cancelled["data"]["result"]["status"] == "cancelled"

            FuturesOrderChannel(futures.conn).subscribe([UID, "!all"])
            FuturesPositionsChannel(futures.conn).subscribe([UID, "!all"])
            market = {"contract": "BTC_USDT", "size": 1, "price": "0", "tif": "ioc"}
            FuturesOrderPlaceChannel(futures.conn).api_request(market, req_id="gw-3")
            assert (await futures.answer("futures.order_place", "gw-3"))["header"][
                "status"
            ] == "200"
            await futures.update("futures.positions")
            resting = {"contract": "BTC_USDT", "size": 1, "price": "100", "tif": "gtc"}
            FuturesOrderPlaceChannel(futures.conn).api_request(resting, req_id="gw-4")
            fid = (await futures.answer("futures.order_place", "gw-4"))["data"]["result"]["id"]
            FuturesOrderCancelChannel(futures.conn).api_request(
                {"order_id": str(fid)}, req_id="gw-5"
            )
            assert (await futures.answer("futures.order_cancel", "gw-5"))["header"][
                "status"
            ] == "200"

            # gate-ws replays everything it ever sent after a reconnect: the session must stay up.
            new_key, _ = await rotate(bench, path)
            await wait_for(lambda: len(exchange.state.ws_connections) == 2)
            SpotOrderPlaceChannel(spot.conn).api_request(order, req_id="gw-6")
            assert (await spot.answer("spot.order_place", "gw-6"))["header"]["status"] == "200"
        finally:
            await spot.close()
            await futures.close()
        frames = bench.frames()
        check_frames(frames, {old_key, new_key})
        places = signed(frames, "spot.order_place")
        assert [(d["payload"]["req_id"], d["payload"]["api_key"]) for d in places] == [
            ("gw-1", old_key),
            ("gw-6", new_key),
        ]
        secret = bench.keys["rot"][1]
        assert not [d for d in spot.received + futures.received if secret in json.dumps(d)]


# -- ccxt.pro --------------------------------------------------------------------------------

CCXT_OPTIONS = {
    "fetchMarkets": {"types": ["spot", "swap"]},
    "swap": {"fetchMarkets": {"settlementCurrencies": ["usdt"]}},
    "watchPositions": {"fetchPositionsSnapshot": False},
}


def point_ccxt_pro(exchange: Any, bench: WsBench, key: str) -> Any:
    """REST entries at the key's listener, each WebSocket URL at the sidecar's twin path."""
    api = exchange.urls["api"]
    for group in ("public", "private"):
        for name in api[group]:
            api[group][name] = bench.sidecar.url(key) + "/api/v4"
    api["spot"] = bench.ws_url(key, "/ws/v4/")
    for settle in ("usdt", "btc"):
        # /v4/ws/futures/: ccxt reads a connection's market type from its URL text.
        api["swap"][settle] = bench.ws_url(key, f"/v4/ws/futures/{settle}")
        api["future"][settle] = bench.ws_url(key, f"/v4/ws/delivery/{settle}")
        api["option"][settle] = bench.ws_url(key, f"/v4/ws/options/{settle}")
    return exchange


def ccxt_pro(bench: WsBench, key: str) -> Any:
    import ccxt.pro

    config = {"apiKey": DUMMY_KEY, "secret": DUMMY_SECRET, "uid": UID, "options": CCXT_OPTIONS}
    return point_ccxt_pro(ccxt.pro.gate(config), bench, key)


def subscribed(state: Any, channel: str) -> bool:
    return any(channel in conn.subs for conn in state.ws_connections)


@pytest.fixture
async def pro_bench(exchange: RunningExchange) -> AsyncIterator[WsBench]:
    async with ws_bench(exchange, {"bot": "full-trading", "reader": "read-only"}) as bench:
        yield bench


@pytest.mark.ccxt
async def test_ccxt_pro_watches_and_trades_with_dummy_credentials(pro_bench: WsBench) -> None:
    state = pro_bench.exchange.state
    ex = ccxt_pro(pro_bench, "bot")
    try:
        await ex.load_markets()
        orders = asyncio.create_task(ex.watch_orders("BTC/USDT"))
        balance = asyncio.create_task(ex.watch_balance())
        await wait_for(
            lambda: subscribed(state, "spot.orders") and subscribed(state, "spot.balances")
        )
        order = await ex.create_order_ws("BTC/USDT", "limit", "buy", 0.001, 60000)
        assert order["status"] == "open"
        watched = await asyncio.wait_for(orders, 5)
        assert order["id"] in [o["id"] for o in watched]
        assert (await asyncio.wait_for(balance, 5))["USDT"]["total"] > 0
        cancelled = await ex.cancel_order_ws(order["id"], "BTC/USDT")
        assert cancelled["status"] == "canceled"

        positions = asyncio.create_task(ex.watch_positions(["BTC/USDT:USDT"]))
        swap_orders = asyncio.create_task(ex.watch_orders("BTC/USDT:USDT"))
        await wait_for(
            lambda: subscribed(state, "futures.positions") and subscribed(state, "futures.orders")
        )
        await ex.create_order_ws("BTC/USDT:USDT", "market", "buy", 1)
        (position,) = await asyncio.wait_for(positions, 5)
        assert position["symbol"] == "BTC/USDT:USDT" and position["contracts"] == 1
        assert (await asyncio.wait_for(swap_orders, 5))[0]["symbol"] == "BTC/USDT:USDT"
    finally:
        await ex.close()
    check_frames(pro_bench.frames(), {pro_bench.keys["bot"][0]})
    logins = {d["channel"] for d in signed(pro_bench.frames(), "spot.login")}
    logins |= {d["channel"] for d in signed(pro_bench.frames(), "futures.login")}
    assert logins == {"spot.login", "futures.login"}


@pytest.mark.ccxt
async def test_ccxt_pro_gets_an_error_not_a_hang_for_a_denied_order(pro_bench: WsBench) -> None:
    import ccxt

    ex = ccxt_pro(pro_bench, "reader")
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.ExchangeError, match="SIDECAR_POLICY_DENIED"):
            await asyncio.wait_for(ex.create_order_ws("BTC/USDT", "limit", "buy", 0.001, 60000), 5)
        # The socket is still usable: a read the policy allows goes through.
        orders = asyncio.create_task(ex.watch_orders("BTC/USDT"))
        state = pro_bench.exchange.state
        await wait_for(lambda: subscribed(state, "spot.orders"))
        orders.cancel()
    finally:
        await ex.close()
    assert not signed(pro_bench.frames(), "spot.order_place")


def _signed_since(bench: WsBench, mark: int, channel: str, api_key: str) -> bool:
    return any(f.channel == channel and f.api_key == api_key for f in bench.frames(mark))


@pytest.mark.ccxt
async def test_ccxt_pro_reconnects_after_a_close_rotation_and_stops_at_a_revocation(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    """``on_rotation: close`` with ccxt: each pending ``watch_*`` raises ``NetworkError`` with the
    4001 close; ccxt forgets the connection, and the bot's next call opens a new one, logs in and
    subscribes again, signed afresh by the sidecar. ccxt replays nothing (unlike gate-ws). A
    revocation closes with 4003; what the bot tries next is refused, never left hanging."""
    import ccxt

    async with rotating_bench(exchange, tmp_path, {"on_rotation": "close"}) as (bench, path):
        old_key = bench.keys["rot"][0]
        ex = ccxt_pro(bench, "rot")
        try:
            await ex.load_markets()
            watch = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            await wait_for(lambda: subscribed(exchange.state, "spot.orders"))
            await ex.create_order_ws("BTC/USDT", "limit", "buy", 0.001, 60000)
            await asyncio.wait_for(watch, 5)
            watch = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            mark = bench.mark()
            new_key, _ = await rotate(bench, path)
            with pytest.raises(ccxt.NetworkError, match="closing code 4001"):
                await asyncio.wait_for(watch, 5)
            # A ccxt bot's loop calls again: a new connection, a fresh subscription and login.
            # (The test exchange gives each key its own book, so the bot trades anew.)
            watch = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            await wait_for(lambda: _signed_since(bench, mark, "spot.orders", new_key))
            order = await ex.create_order_ws("BTC/USDT", "limit", "buy", 0.001, 60000)
            edited = await ex.edit_order_ws(order["id"], "BTC/USDT", "limit", "buy", 0.002, 59000)
            assert (edited["id"], edited["price"], edited["amount"]) == (order["id"], 59000, 0.002)
            assert order["id"] in [o["id"] for o in await asyncio.wait_for(watch, 5)]
            # The amend's spot.orders update reaches ccxt's order cache too.
            await wait_for(
                lambda: any(o["id"] == order["id"] and o["price"] == 59000 for o in ex.orders)
            )

            watch = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            handle = bench.sidecar.sidecar.keys["rot"]
            handle.source.rotation.revoke(handle.runtime.slot, "deleted in the test")
            with pytest.raises(ccxt.NetworkError, match="closing code 4003"):
                await asyncio.wait_for(watch, 5)
            with pytest.raises(ccxt.ExchangeError, match="SIDECAR_KEY_UNAVAILABLE"):
                await asyncio.wait_for(ex.watch_orders("BTC/USDT"), 5)
        finally:
            await ex.close()
    frames = bench.frames()
    check_frames(frames, {old_key, new_key})
    after = [f for f in bench.frames(mark) if f.verdict == "ok"]
    assert [(f.channel, f.api_key) for f in after] == [
        ("spot.orders", new_key),
        ("spot.login", new_key),
        ("spot.order_place", new_key),
        ("spot.order_amend", new_key),
    ]
    assert len(signed(frames, "spot.order_place")) == 2  # each placed once: nothing replayed


# -- gateio-api (Node) -----------------------------------------------------------------------


async def node_sdk() -> str:
    """node, with gateio-api installed from the lockfile into tests/clients/ws_node when missing."""
    node = tool("node")
    if not (NODE_DIR / "node_modules" / "gateio-api" / "package.json").exists():
        await run([tool("npm"), "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR)
    return node


async def test_gateio_api_websocket_clients_watch_and_trade(exchange: RunningExchange) -> None:
    node = await node_sdk()
    async with ws_bench(exchange, {"bot": "full-trading"}) as bench:
        argv = [node, "ws_steps.mjs", bench.ws_url("bot"), bench.ws_url("bot", "/v4/ws/usdt")]
        out = await run(argv, cwd=NODE_DIR)
    results = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    steps = {r["step"]: r for r in results}
    failed = [r for r in results if not r["ok"]]
    assert not failed, failed
    for step in (
        "spot login",
        "spot.order_place",
        "spot.order_cancel",
        "futures login",
        "futures.order_place",
        "futures.order_cancel",
        "futures.order_place (market)",
    ):
        assert step in steps, (step, results)
    assert steps["updates"]["data"] == ["futures.orders", "futures.positions", "spot.orders"]
    frames = bench.frames()
    check_frames(frames, {bench.keys["bot"][0]})
    # gateio-api signs its login over req_param "" (two quote characters): kept as sent.
    (login,) = signed(frames, "spot.login")
    assert login["payload"]["req_param"] == ""
    assert bench.keys["bot"][1] not in out.decode()
