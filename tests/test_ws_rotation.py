"""Rotation and revocation while WebSocket sessions are open: resume, close, keep."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.credentials.watch import CredentialWatch
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ws import WsBench, recv_json, rotate, rotating_bench, wait_for
from tests.test_ws_proxy import ORDER, answers, api, sub


@pytest.fixture
async def bot_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def _logged_in(ws: aiohttp.ClientWebSocketResponse, seen: list[dict[str, Any]]) -> None:
    await ws.send_str(api("spot.login", {}, "login-1"))
    await recv_json(ws, answers("login-1"), seen=seen)
    for channel in ("spot.orders", "spot.tickers"):
        await ws.send_str(sub(channel, ["BTC_USDT"]))
        await recv_json(ws, lambda d, c=channel: d.get("channel") == c, seen=seen)  # type: ignore[misc]


def _sent(bench: WsBench, channel: str, mark: int = 0) -> list[dict[str, Any]]:
    return [json.loads(f.text) for f in bench.frames(mark) if f.channel == channel]


async def test_resume_moves_the_session_to_the_new_key_without_closing_or_resending(
    exchange: RunningExchange, tmp_path: Path, bot_session: aiohttp.ClientSession
) -> None:
    async with rotating_bench(exchange, tmp_path, {"on_rotation": "resume"}) as (bench, path):
        old_key = bench.keys["rot"][0]
        seen: list[dict[str, Any]] = []
        async with bot_session.ws_connect(bench.ws_url("rot")) as ws:
            await _logged_in(ws, seen)
            await ws.send_str(api("spot.order_place", ORDER, "before"))
            await recv_json(ws, answers("before"), seen=seen)
            # An order still on its way when the key rotates: its answer must reach the bot.
            exchange.state.delays["ws:spot.order_place"] = 0.5
            frames = len(exchange.state.ws_frames)
            await ws.send_str(api("spot.order_place", ORDER, "in-flight"))
            await wait_for(lambda: len(exchange.state.ws_frames) > frames)  # at the exchange
            mark = bench.mark()
            new_key, _ = await rotate(bench, path)
            in_flight = await recv_json(ws, answers("in-flight"), seen=seen)
            assert in_flight["header"]["status"] == "200"
            exchange.state.delays.clear()
            await wait_for(lambda: len(exchange.state.ws_connections) == 1)  # the old one closed
            await ws.send_str(api("spot.order_place", ORDER, "after"))
            after = await recv_json(ws, answers("after"), seen=seen)
            assert after["header"]["status"] == "200"
            # The re-made private subscription delivers the new key's order updates.
            update = await recv_json(ws, lambda d: d.get("channel") == "spot.orders", seen=seen)
            assert update["event"] == "update"
            assert not ws.closed
        logins = _sent(bench, "spot.login", mark)
        assert [d["payload"]["api_key"] for d in logins] == [new_key]
        resubscribed = _sent(bench, "spot.orders", mark)
        assert [d["auth"]["KEY"] for d in resubscribed] == [new_key]
        assert len(_sent(bench, "spot.tickers", mark)) == 1
        places = _sent(bench, "spot.order_place")
        assert [d["payload"]["req_id"] for d in places] == ["before", "in-flight", "after"]
        assert [d["payload"]["api_key"] for d in places] == [old_key, old_key, new_key]
        assert all(f.verdict in ("ok", "public") for f in bench.frames())
        # The bot saw no answer to what it did not ask (its own answers were taken by the
        # recv_json calls that waited for them; `seen` holds everything else it received).
        assert not [d for d in seen if str(d.get("request_id", "")).startswith("sidecar-")]
        assert not [d for d in seen if d.get("event") == "subscribe" or "login" in str(d)]
        stats = bench.sidecar.sidecar.keys["rot"].runtime.ws
        assert stats is not None and stats.stats.resumed == 1


async def test_close_closes_a_signing_session_with_4001_and_leaves_public_ones(
    exchange: RunningExchange, tmp_path: Path, bot_session: aiohttp.ClientSession
) -> None:
    async with rotating_bench(exchange, tmp_path, {"on_rotation": "close"}) as (bench, path):
        async with (
            bot_session.ws_connect(bench.ws_url("rot")) as signing,
            bot_session.ws_connect(bench.ws_url("rot")) as public,
        ):
            await _logged_in(signing, [])
            await public.send_str(sub("spot.tickers", ["BTC_USDT"]))
            await recv_json(public)
            await rotate(bench, path)
            msg = await signing.receive(timeout=5)
            assert (msg.type, msg.data, msg.extra) == (
                aiohttp.WSMsgType.CLOSE,
                4001,
                "key rotated, reconnect",
            )
            await public.send_str('{"time": 1, "channel": "spot.ping"}')
            assert (await recv_json(public))["channel"] == "spot.pong"


async def test_keep_leaves_the_session_and_signs_what_follows_with_the_new_pair(
    exchange: RunningExchange, tmp_path: Path, bot_session: aiohttp.ClientSession
) -> None:
    async with rotating_bench(exchange, tmp_path, {"on_rotation": "keep"}) as (bench, path):
        async with bot_session.ws_connect(bench.ws_url("rot")) as ws:
            await _logged_in(ws, [])
            mark = bench.mark()
            new_key, _ = await rotate(bench, path)
            await ws.send_str(api("spot.order_place", ORDER, "kept"))
            assert (await recv_json(ws, answers("kept")))["header"]["status"] == "200"
            assert len(exchange.state.ws_connections) == 1
        (place,) = _sent(bench, "spot.order_place", mark)
        assert place["payload"]["api_key"] == new_key
        assert not _sent(bench, "spot.login", mark)


@pytest.mark.parametrize("mode", ["resume", "keep"])
async def test_a_revoked_key_closes_every_session_with_4003(
    exchange: RunningExchange, tmp_path: Path, bot_session: aiohttp.ClientSession, mode: str
) -> None:
    async with rotating_bench(exchange, tmp_path, {"on_rotation": mode}) as (bench, _):
        async with bot_session.ws_connect(bench.ws_url("rot")) as ws:
            await ws.send_str(sub("spot.tickers", ["BTC_USDT"]))
            await recv_json(ws)
            handle = bench.sidecar.sidecar.keys["rot"]
            handle.source.rotation.revoke(handle.runtime.slot, "deleted in the test")
            msg = await ws.receive(timeout=5)
            assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4003, "key revoked")
        await wait_for(lambda: not exchange.state.ws_connections)


def test_a_failing_watcher_does_not_keep_the_others_from_hearing_of_a_rotation() -> None:
    watch = CredentialWatch()
    heard: list[tuple[str, str]] = []

    def broken(event: str, detail: str) -> None:
        raise RuntimeError("a session's bug")

    watch.subscribe("bot", broken)
    unsubscribe = watch.subscribe("bot", lambda event, detail: heard.append((event, detail)))
    watch.subscribe("other", lambda event, detail: heard.append(("other", event)))
    watch("bot", "rotated", "v2")
    unsubscribe()
    watch("bot", "revoked", "gone")
    assert heard == [("rotated", "v2")] and watch.watchers("bot") == 1
