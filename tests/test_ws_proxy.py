"""The WebSocket relay end to end: a bot with no secret, the sidecar, the verifying exchange."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.fixtures_ws import WsBench, recv_json, wait_for, ws_bench, ws_upstream

JUNK_AUTH = {"method": "api_key", "KEY": "junk-key", "SIGN": "junk-sign"}


@pytest.fixture
async def wb(exchange: RunningExchange) -> AsyncIterator[WsBench]:
    policies = {
        "full": "full-trading",
        "reader": "read-only",
        "futures": "futures-only",
        "spot": "spot-only",
    }
    async with ws_bench(
        exchange, policies, ws={"max_connections": 3, "max_frame_bytes": 4096}
    ) as b:
        yield b


def sub(channel: str, payload: Any = None, **extra: Any) -> str:
    doc = {"time": 1, "channel": channel, "event": "subscribe", "payload": payload or [], **extra}
    return json.dumps(doc)


def api(channel: str, req_param: Any, req_id: str, **extra: Any) -> str:
    payload = {"req_id": req_id, "req_param": req_param, "api_key": "junk", "signature": "junk"}
    return json.dumps({"time": 1, "channel": channel, "event": "api", "payload": payload, **extra})


ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "60000"}
AMEND = {"order_id": "1", "currency_pair": "BTC_USDT"}
MARGIN_ID = {"currency_pair": "BTC_USDT", "id": "1", "account": "margin"}


def answers(req_id: str) -> Any:
    return lambda d: d.get("request_id") == req_id and d.get("ack") is not True


async def test_a_private_subscription_is_signed_with_the_real_key_and_verified(
    wb: WsBench,
) -> None:
    mark = wb.mark()
    async with aiohttp.ClientSession() as http, http.ws_connect(wb.ws_url("full")) as ws:
        await ws.send_str(sub("spot.orders", ["BTC_USDT"], id=7, auth=JUNK_AUTH))
        answer = await recv_json(ws)
        assert answer["result"] == {"status": "success"} and answer["id"] == 7
    (seen,) = wb.frames(mark)
    assert seen.verdict == "ok" and seen.api_key == wb.keys["full"][0]
    assert "junk" not in seen.text
    sent = json.loads(seen.text)
    assert sent["time"] != 1  # far from the sidecar's clock: replaced


async def test_a_public_channel_and_a_ping_pass_unchanged(wb: WsBench) -> None:
    mark = wb.mark()
    frames = [sub("spot.tickers", ["BTC_USDT"]), '{"time": 5, "channel": "spot.ping"}']
    async with aiohttp.ClientSession() as http, http.ws_connect(wb.ws_url("full")) as ws:
        await ws.send_str(frames[0])
        assert (await recv_json(ws))["result"] == {"status": "success"}
        await ws.send_str(frames[1])
        assert (await recv_json(ws))["channel"] == "spot.pong"
    assert [f.text for f in wb.frames(mark)] == frames
    assert [f.verdict for f in wb.frames(mark)] == ["public", "public"]


@pytest.mark.parametrize("login_param", [{}, ""], ids=["gate-ws and ccxt", "gateio-api"])
async def test_login_and_orders_are_signed_over_the_req_param_text_forwarded(
    wb: WsBench, login_param: Any
) -> None:
    mark = wb.mark()
    async with aiohttp.ClientSession() as http, http.ws_connect(wb.ws_url("full")) as ws:
        await ws.send_str(api("spot.login", login_param, "l-1"))
        login = await recv_json(ws, answers("l-1"))
        assert login["header"]["status"] == "200"
        assert login["data"]["result"]["api_key"] == wb.keys["full"][0]
        await ws.send_str(api("spot.order_place", {**ORDER, "text": "t-ws-1"}, "o-1"))
        placed = await recv_json(ws, answers("o-1"))
        order = placed["data"]["result"]
        assert order["status"] == "open"
        cancel = {"order_id": order["id"], "currency_pair": "BTC_USDT"}
        await ws.send_str(api("spot.order_cancel", cancel, "c-1"))
        cancelled = await recv_json(ws, answers("c-1"))
        assert cancelled["data"]["result"]["status"] == "cancelled"
    sent = wb.frames(mark)
    assert [f.verdict for f in sent] == ["ok", "ok", "ok"]
    for frame in sent:
        doc = json.loads(frame.text)
        assert (
            doc["payload"]["api_key"] == wb.keys["full"][0]
            and frame.api_key == doc["payload"]["api_key"]
        )
        assert str(doc["time"]) == doc["payload"]["timestamp"]  # one fresh value in both
        assert "junk" not in frame.text
    # REST sees the order the WebSocket placed: one book.
    account = wb.exchange.state.accounts[wb.keys["full"][0]]
    assert account.spot_orders[order["id"]]["status"] == "cancelled"


async def _refused(wb: WsBench, key: str, frame: str, path: str = "/ws/v4/") -> dict[str, Any]:
    mark = wb.mark()
    async with aiohttp.ClientSession() as http, http.ws_connect(wb.ws_url(key, path)) as ws:
        await ws.send_str(frame)
        error = await recv_json(ws)
        # The connection stays open and usable.
        ping = "spot.ping" if path == "/ws/v4/" else "futures.ping"
        await ws.send_str(json.dumps({"time": 1, "channel": ping}))
        assert (await recv_json(ws))["channel"].endswith(".pong")
    assert [f.channel for f in wb.frames(mark)] == [ping]  # the refused frame never left
    return error


@pytest.mark.parametrize(
    ("key", "frame", "path"),
    [
        ("reader", api("spot.order_place", ORDER, "r-1", id=41, request_id="r-1"), "/ws/v4/"),
        ("reader", api("futures.order_cancel", {"order_id": "1"}, "r-2", id=42), "/v4/ws/usdt"),
        ("futures", sub("spot.orders", ["BTC_USDT"], id=43), "/ws/v4/"),
        ("futures", api("spot.login", {}, "r-4", id=44), "/ws/v4/"),
        ("spot", api("spot.order_place", {**ORDER, "account": "margin"}, "r-5", id=45), "/ws/v4/"),
        ("spot", sub("futures.positions", ["1", "!all"], id=46), "/v4/ws/usdt"),
        ("full", api("spot.unknown_call", {}, "r-7", id=47), "/ws/v4/"),
        ("reader", api("spot.order_amend", {**AMEND, "price": "1"}, "r-8", id=48), "/ws/v4/"),
        ("reader", api("futures.order_cancel_ids", ["1"], "r-9", id=49), "/v4/ws/usdt"),
        ("spot", api("spot.order_cancel_ids", [MARGIN_ID], "r-10", id=50), "/ws/v4/"),
    ],
    ids=[
        "read-only may not place",
        "read-only may not cancel",
        "futures-only may not watch spot orders",
        "futures-only may not log in to the spot API",
        "spot-only may not place a margin order",
        "spot-only may not watch futures positions",
        "an unknown trading-API channel is never signed",
        "read-only may not amend",
        "read-only may not cancel by ids",
        "spot-only may not cancel margin orders by ids",
    ],
)
async def test_a_denied_frame_answers_an_error_with_every_id_and_the_socket_stays_open(
    wb: WsBench, key: str, frame: str, path: str
) -> None:
    sent = json.loads(frame)
    error = await _refused(wb, key, frame, path)
    assert error["channel"] == sent["channel"] and error["event"] == sent["event"]
    assert error["id"] == sent["id"]
    assert error["error"]["label"] == "SIDECAR_POLICY_DENIED"
    if sent["event"] == "api":
        assert error["request_id"] == sent["payload"]["req_id"]
        assert error["header"] == {
            "response_time": error["header"]["response_time"],
            "status": "403",
            "channel": sent["channel"],
            "event": "api",
        }
        assert error["data"]["errs"]["label"] == "SIDECAR_POLICY_DENIED"


async def test_read_only_may_watch_private_channels_and_spot_only_may_place_spot_orders(
    wb: WsBench,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(wb.ws_url("reader", "/v4/ws/futures/usdt")) as ws:
            await ws.send_str(sub("futures.positions", ["1", "!all"]))
            assert (await recv_json(ws))["result"] == {"status": "success"}
        async with http.ws_connect(wb.ws_url("spot")) as ws:
            await ws.send_str(api("spot.order_place", {**ORDER, "account": "spot"}, "s-1"))
            placed = await recv_json(ws, answers("s-1"))
            assert placed["header"]["status"] == "200", placed


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"channel": "spot.login", "event": "api", "payload": 3}', "payload object"),
        ('{"channel": "spot.orders", "event": "subscribe", "event": "x"}', "repeats"),
    ],
)
async def test_a_frame_the_sidecar_cannot_check_is_refused_not_forwarded(
    wb: WsBench, frame: str, why: str
) -> None:
    error = await _refused(wb, "full", frame)
    assert error["error"]["label"] == "SIDECAR_BAD_REQUEST" and why in error["error"]["message"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/v4/ws/eth", 404), ("/v4/ws/options/usd", 404), ("/ws/v4", 404), ("/ws/v4/?a=1", 400)],
)
async def test_a_bad_path_is_refused_before_any_upstream_connection(
    wb: WsBench, path: str, status: int
) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(wb.ws_url("full", path))
    assert err.value.status == status
    assert not wb.exchange.state.ws_connections


async def test_an_upstream_that_cannot_be_reached_is_a_502_before_upgrading(
    exchange: RunningExchange,
) -> None:
    with socket.socket() as closed:  # a port nothing listens on: Gate "unreachable"
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    entry, environ, api_key, secret = env_key("full", "full-trading")
    exchange.state.add_key(api_key, secret)
    upstream = {**ws_upstream(exchange), "delivery": f"ws://127.0.0.1:{port}/{{settle}}"}
    config = make_config(exchange.url, [entry], upstream={"ws": upstream})
    async with running_sidecar(config, environ) as sidecar:
        wb = WsBench(exchange, sidecar, {"full": (api_key, secret)})
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(wb.ws_url("full", "/v4/ws/delivery/usdt"))
        assert err.value.status == 502
        ws = sidecar.sidecar.keys["full"].runtime.ws
        assert ws is not None and ws.stats.open == 0


async def test_more_than_max_connections_get_429_before_upgrading(wb: WsBench) -> None:
    async with aiohttp.ClientSession() as http:
        open_ = [await http.ws_connect(wb.ws_url("full")) for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(wb.ws_url("full"))
        assert err.value.status == 429
        await open_[0].close()
        await wait_for(lambda: wb.sidecar.sidecar.keys["full"].runtime.ws.stats.open == 2)  # type: ignore[union-attr]
        again = await http.ws_connect(wb.ws_url("full"))
        for ws in [*open_[1:], again]:
            await ws.close()


async def test_a_frame_over_max_frame_bytes_closes_with_1009(wb: WsBench) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(wb.ws_url("full")) as ws:
        await ws.send_str(sub("spot.tickers", ["x" * 5000]))
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009


async def test_close_codes_and_pings_pass_through_both_ways(wb: WsBench) -> None:
    state = wb.exchange.state
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(wb.ws_url("full"), autoping=False) as ws:
            await ws.ping(b"hello")
            pong = await ws.receive(timeout=5)
            assert pong.type is aiohttp.WSMsgType.PONG and pong.data == b"hello"
            await wait_for(lambda: len(state.ws_connections) == 1)
            (conn,) = state.ws_connections
            await conn.ws.close(code=4321, message=b"server restarting")
            msg = await ws.receive(timeout=5)
            assert (msg.type, msg.data, msg.extra) == (
                aiohttp.WSMsgType.CLOSE,
                4321,
                "server restarting",
            )
        async with http.ws_connect(wb.ws_url("full")) as ws:
            await wait_for(lambda: len(state.ws_connections) == 1)
            (conn,) = state.ws_connections
            await ws.close(code=4000, message=b"bye")
            await wait_for(lambda: conn.ws.closed)
            assert conn.ws.close_code == 4000


async def test_an_idle_connection_is_closed(exchange: RunningExchange) -> None:
    async with (
        ws_bench(exchange, {"full": "full-trading"}, ws={"idle_timeout_s": 0.3}) as b,
        aiohttp.ClientSession() as http,
        http.ws_connect(b.ws_url("full")) as ws,
    ):
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001
        assert msg.extra == "idle timeout"


async def test_no_secret_in_frames_logs_or_metrics(
    wb: WsBench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    received: list[str] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(wb.ws_url("full")) as ws:
        await ws.send_str(api("spot.login", {}, "n-1"))
        await ws.send_str(sub("spot.orders", ["BTC_USDT"]))
        await ws.send_str(api("spot.order_place", ORDER, "n-2"))
        await ws.send_str(sub("spot.orders", ["BTC_USDT"], event="unsubscribe"))
        async with asyncio.timeout(5):
            while len(received) < 6:
                msg = await ws.receive()
                received.append(msg.data)
        async with http.get(wb.sidecar.admin_url + "/metrics") as resp:
            metrics = await resp.text()
    secret = wb.keys["full"][1]
    for text in (*received, caplog.text, metrics):
        assert secret not in text
    signed = [json.loads(f.text) for f in wb.exchange.state.ws_frames if f.verdict == "ok"]
    signatures = [d["payload"]["signature"] for d in signed if d["event"] == "api"]
    signatures += [d["auth"]["SIGN"] for d in signed if "auth" in d]
    assert signatures and not [s for s in signatures if s in caplog.text or s in metrics]
    assert 'gate_sidecar_ws_signed_frames_total{key="full",kind="api"} 2.0' in metrics
    assert 'gate_sidecar_ws_frames_total{direction="in",key="full"}' in metrics
    audit = [r for r in caplog.records if r.getMessage() == "ws frame"]
    assert {r.__dict__["audit"]["channel"] for r in audit} >= {"spot.login", "spot.orders"}


async def test_denied_frames_are_counted_by_reason(wb: WsBench) -> None:
    await _refused(wb, "reader", api("spot.order_place", ORDER, "m-1"))
    await _refused(wb, "spot", api("spot.order_place", {**ORDER, "account": "margin"}, "m-2"))
    async with aiohttp.ClientSession() as http:
        async with http.get(wb.sidecar.admin_url + "/metrics") as resp:
            metrics = await resp.text()
    assert 'gate_sidecar_ws_denied_frames_total{key="reader",reason="no_rule"} 1.0' in metrics
    assert 'gate_sidecar_ws_denied_frames_total{key="spot",reason="condition"} 1.0' in metrics


async def test_a_websocket_order_a_guard_refuses_never_leaves_and_a_small_one_does(
    exchange: RunningExchange,
) -> None:
    guards = {"instruments": ["BTC_USDT"], "settle": ["usdt"], "max_order_size": 2}
    entry, environ, api_key, secret = env_key("fut", "futures-only", guards=guards)
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    big = {"contract": "BTC_USDT", "size": 5, "price": "60000", "tif": "gtc"}
    other = {**big, "contract": "ETH_USDT", "size": 1}
    async with running_sidecar(config, environ) as sidecar:
        wb = WsBench(exchange, sidecar, {"fut": (api_key, secret)})
        mark = wb.mark()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("fut", "/v4/ws/usdt")) as ws,
        ):
            await ws.send_str(api("futures.order_place", big, "g-1", id=51))
            refused = await recv_json(ws, answers("g-1"))
            await ws.send_str(api("futures.order_place", other, "g-2", id=52))
            elsewhere = await recv_json(ws, answers("g-2"))
            await ws.send_str(api("futures.order_place", {**big, "size": 2}, "g-3"))
            placed = await recv_json(ws, answers("g-3"))
    assert refused["error"]["label"] == "SIDECAR_GUARD_DENIED" and refused["id"] == 51
    assert "max_order_size 2 < size 5" in refused["error"]["message"]
    assert elsewhere["error"]["label"] == "SIDECAR_GUARD_DENIED"
    assert "instruments" in elsewhere["error"]["message"]
    assert placed["header"]["status"] == "200"
    sent = [json.loads(f.text)["payload"]["req_id"] for f in wb.frames(mark)]
    assert sent == ["g-3"]  # the refused orders never reached the exchange


@pytest.mark.parametrize(
    ("headers", "status", "label"),
    [
        ({"Origin": "https://evil.example"}, 403, "SIDECAR_FORBIDDEN_ORIGIN"),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "SIDECAR_FORBIDDEN_ORIGIN"),
        ({"Host": "rebind.evil.example"}, 421, "SIDECAR_MISDIRECTED"),
    ],
    ids=["a page's Origin", "a cross-site fetch", "a rebound Host"],
)
async def test_a_browser_cannot_open_a_websocket_to_a_keys_listener(
    wb: WsBench, headers: dict[str, str], status: int, label: str
) -> None:
    mark = wb.mark()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(wb.ws_url("full"), headers=headers)
    assert info.value.status == status
    async with http_get_json(wb.sidecar.url("full") + "/ws/v4/", headers) as (code, doc):
        assert (code, doc["label"]) == (status, label)
    assert wb.frames(mark) == []  # nothing reached the exchange


@contextlib.asynccontextmanager
async def http_get_json(
    url: str, headers: dict[str, str]
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    key = {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={**upgrade, **key, **headers}) as resp,
    ):
        yield resp.status, await resp.json(content_type=None)
