"""Issue 17 from the bot's side: frames Gate would read differently from the sidecar, private
WebSocket scopes, and client tokens revoked under open connections. Every test sends what an
attacker (or a careless bot) would send, through a real sidecar, to the verifying exchange that
records every frame it receives; what the sidecar refuses must never arrive there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.policy.ws_channels import public_markdown
from sidecar.proxy.client_tokens import CLIENTS, CLOSE_CODE
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.fixtures_ws import WsBench, recv_json, wait_for, ws_upstream
from tests.leaks import register_secret

DOCS = Path(__file__).resolve().parents[1] / "docs" / "websocket.md"
GUARDS = {"instruments": ["BTC_USDT"], "max_order_size": 1, "max_notional": 100}
SCOPED = {"settle": ["usdt"], "instruments": ["BTC_USDT"]}


@contextlib.asynccontextmanager
async def bench(exchange: RunningExchange, **keys: dict[str, Any]) -> AsyncIterator[WsBench]:
    """One env-sourced key per argument: ``name={"policy": ..., "guards": ..., ...}``."""
    entries, environ, pairs = [], {}, {}
    for name, spec in keys.items():
        entry, env, api_key, secret = env_key(name, spec.pop("policy"), ws={}, **spec)
        entries.append(entry)
        environ.update(env)
        pairs[name] = (api_key, secret)
        exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, entries, upstream={"ws": ws_upstream(exchange)})
    async with running_sidecar(config, environ) as sidecar:
        yield WsBench(exchange, sidecar, pairs)


def api_frame(channel: str, req_param: Any, req_id: str, **envelope: Any) -> dict[str, Any]:
    payload = {"req_id": req_id, "req_param": req_param}
    return {"time": 1, "id": req_id, "channel": channel, "event": "api", "payload": payload} | (
        envelope
    )


def login(product: str, req_id: str = "login") -> str:
    return json.dumps(api_frame(f"{product}.login", {}, req_id))


def sub(channel: str, payload: Any, event: str = "subscribe") -> str:
    return json.dumps({"time": 1, "id": 9, "channel": channel, "event": event, "payload": payload})


def answered(req_id: str) -> Any:
    return lambda d: d.get("request_id") == req_id and d.get("ack") is not True


SPOT_BUY = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1000", "price": "60000"}
FUTURES_MARKET = {"contract": "BTC_USDT", "size": 100000, "price": "0", "tif": "ioc"}


def recased(frame: dict[str, Any], spelling: dict[str, str]) -> str:
    """The frame's JSON text with some envelope keys spelled otherwise (``{"event": "EVENT"}``)."""
    return json.dumps({spelling.get(k, k): v for k, v in frame.items()})


async def _after_login(
    wb: WsBench, key: str, path: str, product: str, frames: list[str]
) -> list[dict[str, Any]]:
    """Log in (signed, answered 200), then send each frame; the error frames the bot got. The
    exchange must have received the login and nothing else."""
    errors = []
    async with aiohttp.ClientSession() as http, http.ws_connect(wb.ws_url(key, path)) as ws:
        await ws.send_str(login(product))
        assert (await recv_json(ws, answered("login")))["header"]["status"] == "200"
        mark = wb.mark()
        for text in frames:
            await ws.send_str(text)
            errors.append(await recv_json(ws))
        ping = json.dumps({"time": 1, "channel": f"{product}.ping"})
        await ws.send_str(ping)  # the connection is still usable
        assert (await recv_json(ws))["channel"] == f"{product}.pong"
    assert [f.text for f in wb.frames(mark)] == [ping], "a refused frame reached Gate"
    return errors


# -- finding 1: the envelope in other letter cases --------------------------------------------

ORDER_PLACE = api_frame("spot.order_place", SPOT_BUY, "o-1", request_id="o-1")
RECASED = {
    "EVENT": {"event": "EVENT"},
    "CHANNEL": {"channel": "CHANNEL"},
    "Channel, Event, Payload": {"channel": "Channel", "event": "Event", "payload": "Payload"},
    "all upper": {k: k.upper() for k in ORDER_PLACE},
}


@pytest.mark.parametrize("spelling", RECASED.values(), ids=RECASED.keys())
async def test_a_read_only_key_places_no_order_in_another_letter_case(
    exchange: RunningExchange, spelling: dict[str, str]
) -> None:
    async with bench(exchange, reader={"policy": "read-only"}) as wb:
        (error,) = await _after_login(
            wb, "reader", "/ws/v4/", "spot", [recased(ORDER_PLACE, spelling)]
        )
    # Read as Gate reads it: a spot order, which read-only may not place.
    assert error["error"]["label"] == "SIDECAR_POLICY_DENIED"
    assert error["channel"] == "spot.order_place" and error["event"] == "api"
    assert (error["id"], error["request_id"], error["header"]["status"]) == ("o-1", "o-1", "403")


async def test_a_futures_order_in_another_letter_case_meets_the_guards(
    exchange: RunningExchange,
) -> None:
    frame = api_frame("futures.order_place", FUTURES_MARKET, "f-1")
    texts = [recased(frame, {"event": "EVENT"}), recased(frame, {"channel": "Channel"})]
    async with bench(exchange, fut={"policy": "futures-only", "guards": GUARDS}) as wb:
        errors = await _after_login(wb, "fut", "/v4/ws/usdt", "futures", texts)
    for error in errors:
        assert error["error"]["label"] == "SIDECAR_GUARD_DENIED", error
        assert error["request_id"] == "f-1"


AMBIGUOUS = {
    # A status call as the sidecar would read the first spelling, an order as Gate reads the last.
    "a second Channel": '{"time":1,"id":"a-1","channel":"spot.order_status","event":"api",'
    '"payload":{"req_id":"a-1","req_param":{"order_id":"1","currency_pair":"BTC_USDT"}},'
    '"Channel":"spot.order_place"}',
    "event and EVENT": '{"time":1,"id":"a-1","channel":"spot.tickers","event":"subscribe",'
    '"EVENT":"api","payload":{"req_id":"a-1","req_param":{}}}',
    "req_param and REQ_PARAM": json.dumps(
        {
            "time": 1,
            "id": "a-1",
            "channel": "spot.order_place",
            "event": "api",
            "payload": {
                "req_id": "a-1",
                "req_param": {**SPOT_BUY, "amount": "0.0001", "price": "1"},
                "REQ_PARAM": SPOT_BUY,
            },
        }
    ),
    "amount and AMOUNT in req_param": json.dumps(
        api_frame("spot.order_place", {**SPOT_BUY, "amount": "0.0001", "AMOUNT": "1000"}, "a-1")
    ),
    "side and the long-s side (Go folds both to SIDE)": json.dumps(
        api_frame("spot.order_place", {**SPOT_BUY, "amount": "0.0001", "\u017fide": "sell"}, "a-1"),
        ensure_ascii=False,
    ),
    "payload and Payload": '{"time":1,"id":"a-1","channel":"spot.order_place","event":"api",'
    '"payload":{"req_id":"a-1","req_param":{}},"Payload":{"req_id":"a-1","req_param":{}}}',
    "the same key twice": '{"time":1,"id":"a-1","channel":"spot.order_status","event":"api",'
    '"channel":"spot.order_place","payload":{"req_id":"a-1","req_param":{}}}',
    "req_header twice": json.dumps(
        api_frame("spot.order_list", {"currency_pair": "BTC_USDT"}, "a-1")
        | {"payload": {"req_id": "a-1", "req_param": {}, "req_header": {"a": 1, "A": 2}}}
    ),
}


@pytest.mark.parametrize("text", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
async def test_a_frame_holding_two_spellings_of_one_field_is_refused(
    exchange: RunningExchange, text: str
) -> None:
    async with bench(exchange, full={"policy": "full-trading", "guards": GUARDS}) as wb:
        (error,) = await _after_login(wb, "full", "/ws/v4/", "spot", [text])
    assert error["error"]["label"] == "SIDECAR_BAD_REQUEST"
    assert "ambiguous" in error["error"]["message"]
    assert error["id"] == "a-1"  # the bot's id comes back, whatever it could not read


UNREADABLE = {
    "an unknown envelope field": (
        json.dumps({**json.loads(sub("spot.tickers", ["BTC_USDT"])), "extra": 1}),
        "does not read",
    ),
    "an unknown payload field": (
        json.dumps(
            api_frame("spot.order_list", {"currency_pair": "BTC_USDT"}, "u-1")
            | {"payload": {"req_id": "u-1", "req_param": {}, "params": {"x": 1}}}
        ),
        "does not read",
    ),
    "an unknown channel": (sub("spot.secret_channel", []), "not one the sidecar relays"),
    "an unknown event": (sub("spot.tickers", ["BTC_USDT"], event="update"), "not one"),
    "no channel": ('{"time":1,"event":"subscribe","payload":[]}', "channel is missing"),
    "no event on another channel": ('{"time":1,"channel":"spot.tickers"}', "not a ping"),
    "a req_header that is not an object": (
        json.dumps(
            api_frame("spot.order_list", {}, "u-1")
            | {"payload": {"req_id": "u-1", "req_param": {}, "req_header": "X: 1"}}
        ),
        "req_header",
    ),
}


@pytest.mark.parametrize(("text", "why"), UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_a_frame_the_table_does_not_name_is_refused_never_relayed(
    exchange: RunningExchange, text: str, why: str
) -> None:
    async with bench(exchange, full={"policy": "full-trading"}) as wb:
        (error,) = await _after_login(wb, "full", "/ws/v4/", "spot", [text])
    assert error["error"]["label"] == "SIDECAR_BAD_REQUEST"
    assert why in error["error"]["message"]


async def test_fields_in_another_letter_case_are_read_signed_and_sent_as_documented(
    exchange: RunningExchange,
) -> None:
    junk = {"method": "api_key", "KEY": "junk", "SIGN": "junk"}
    private = {"CHANNEL": "spot.orders", "EVENT": "subscribe", "PAYLOAD": ["BTC_USDT"]}
    public = {"Time": 1, "Channel": "spot.tickers", "Event": "subscribe", "Payload": ["BTC_USDT"]}
    order = {
        "Channel": "spot.order_place",
        "Event": "api",
        "Payload": {"REQ_ID": "p-1", "Req_Param": {**SPOT_BUY, "amount": "0.001"}},
    }
    async with bench(exchange, full={"policy": "full-trading"}) as wb:
        mark = wb.mark()
        url = wb.ws_url("full")
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_str(json.dumps({**private, "Auth": junk}))
            assert (await recv_json(ws))["result"] == {"status": "success"}
            await ws.send_str(json.dumps(public))
            assert (await recv_json(ws))["result"] == {"status": "success"}
            await ws.send_str(login("spot"))
            await recv_json(ws, answered("login"))
            await ws.send_str(json.dumps(order))
            placed = await recv_json(ws, answered("p-1"))
        assert placed["header"]["status"] == "200", placed
        sent = wb.frames(mark)
    assert [f.verdict for f in sent] == ["ok", "public", "ok", "ok"]
    documented = {"time", "id", "channel", "event", "payload", "auth"}
    for frame in sent:
        doc = json.loads(frame.text)
        assert set(doc) <= documented, doc  # one spelling of each field reaches Gate
        assert "junk" not in frame.text


# -- finding 3: settle and instruments on private channels and logins -------------------------

SCOPE_REFUSED = [
    ("/v4/ws/btc", login("futures"), "settle"),
    ("/v4/ws/btc", sub("futures.orders", ["!all"]), "settle"),
    ("/v4/ws/btc", sub("futures.positions", ["ETH_USD"]), "settle"),
    ("/v4/ws/usdt", sub("futures.orders", ["!all"]), "allow_unscoped"),
    ("/v4/ws/usdt", sub("futures.orders", ["!all"], event="unsubscribe"), "allow_unscoped"),
    ("/v4/ws/usdt", sub("futures.positions", ["20011", "ETH_USDT"]), "instruments"),
    ("/v4/ws/usdt", sub("futures.usertrades", ["20011", "BTC_USDT", "ETH_USDT"]), "instruments"),
    ("/v4/ws/usdt", sub("futures.auto_deleverages", ["20011", "BTC_USDT"]), "instruments"),
    ("/ws/v4/", sub("spot.orders", ["!all"]), "allow_unscoped"),
    ("/ws/v4/", sub("spot.usertrades", ["ETH_USDT"]), "instruments"),
    ("/ws/v4/", sub("spot.priceorders", []), "allow_unscoped"),
    ("/ws/v4/", sub("spot.orders", [{"pair": "BTC_USDT"}]), "other than names"),
]


@pytest.mark.parametrize(("path", "text", "why"), SCOPE_REFUSED)
async def test_settle_and_instruments_refuse_private_channels_and_logins_as_their_rest_twins(
    exchange: RunningExchange, path: str, text: str, why: str
) -> None:
    async with bench(exchange, scoped={"policy": "full-trading", "guards": SCOPED}) as wb:
        mark = wb.mark()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("scoped", path)) as ws,
        ):
            await ws.send_str(text)
            error = await recv_json(ws)
        assert wb.frames(mark) == []
    assert error["error"]["label"] == "SIDECAR_GUARD_DENIED", error
    assert why in error["error"]["message"]


async def test_scoped_subscriptions_and_logins_within_the_guards_are_signed(
    exchange: RunningExchange,
) -> None:
    async with bench(exchange, scoped={"policy": "full-trading", "guards": SCOPED}) as wb:
        mark = wb.mark()
        url = wb.ws_url("scoped", "/v4/ws/usdt")
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_str(login("futures"))
            assert (await recv_json(ws, answered("login")))["header"]["status"] == "200"
            for text in (
                sub("futures.positions", ["20011", "BTC_USDT"]),
                sub("futures.balances", ["20011"]),
                sub("futures.orders", ["20011", "BTC_USDT"], event="unsubscribe"),
            ):
                await ws.send_str(text)
                assert (await recv_json(ws))["result"] == {"status": "success"}
        assert [f.verdict for f in wb.frames(mark)] == ["ok"] * 4


# -- finding 4: client tokens revoked under open connections ----------------------------------

OLD, NEW = "old-client-token-0123456789", "new-client-token-9876543210"


def _audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.audit for r in caplog.records if r.name == "sidecar.audit"]  # type: ignore[attr-defined]


async def test_a_revoked_client_token_closes_its_websocket_session_and_kept_alive_connection(
    exchange: RunningExchange,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    register_secret(OLD, NEW)
    token_file = tmp_path / "token"
    token_file.write_text(OLD + "\n")
    auth = {"token_file": str(token_file), "recheck_s": 0.2}
    async with bench(exchange, bot={"policy": "full-trading", "client_auth": auth}) as wb:
        url = wb.ws_url("bot")
        port = int(wb.sidecar.url("bot").rsplit(":", 1)[1])
        async with (
            aiohttp.ClientSession(headers={"X-Sidecar-Token": OLD}) as http,
            http.ws_connect(url) as ws,
        ):
            await ws.send_str(sub("spot.orders", ["BTC_USDT"]))
            assert (await recv_json(ws))["result"] == {"status": "success"}
            # A kept-alive REST connection, answered once with the old token.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET /api/v4/spot/accounts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"X-Sidecar-Token: {OLD}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)

            mark = wb.mark()
            (tmp_path / "token.new").write_text(NEW)
            os.replace(tmp_path / "token.new", token_file)

            closed = await ws.receive(timeout=5)
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == CLOSE_CODE
            assert closed.extra == "client token revoked"
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # the server closed it
            writer.close()
        assert wb.frames(mark) == []  # nothing more was signed for the old token
        await wait_for(lambda: len(CLIENTS) == 0)
    audit = _audit(caplog)
    ws_close = [a for a in audit if a.get("event") == "close"]
    rest = [a for a in audit if a.get("label") == "SIDECAR_UNAUTHENTICATED" and "ws" not in a]
    assert [a["label"] for a in ws_close] == ["SIDECAR_UNAUTHENTICATED"]
    assert len(rest) == 1
    assert OLD not in caplog.text and NEW not in caplog.text


async def test_a_token_file_rewritten_with_the_same_token_closes_nothing(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    register_secret(OLD)
    token_file = tmp_path / "token"
    token_file.write_text(OLD)
    auth = {"token_file": str(token_file)}
    async with bench(exchange, bot={"policy": "full-trading", "client_auth": auth}) as wb:
        async with (
            aiohttp.ClientSession(headers={"X-Sidecar-Token": OLD}) as http,
            http.ws_connect(wb.ws_url("bot")) as ws,
        ):
            (tmp_path / "token.new").write_text(OLD + "\n")
            os.replace(tmp_path / "token.new", token_file)
            checked = CLIENTS.check()  # the check itself, not a wait
            assert checked == 0
            await ws.send_str(sub("spot.orders", ["BTC_USDT"]))
            assert (await recv_json(ws))["result"] == {"status": "success"}


def test_the_public_channels_relayed_are_the_ones_in_the_docs() -> None:
    assert public_markdown() in DOCS.read_text()


async def test_a_channel_or_event_the_table_does_not_name_never_reaches_a_log_line(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    marker = "bot-text-5f3a9c0e71d2"
    register_secret(marker)  # the leak scanner fails the test if it is logged anywhere
    frames = [
        sub(f"spot.{marker}", []),
        sub("spot.tickers", [], event=marker),
        json.dumps(api_frame(f"spot.{marker}", {}, "m-1")),
    ]
    async with bench(exchange, full={"policy": "full-trading"}) as wb:
        errors = await _after_login(wb, "full", "/ws/v4/", "spot", frames)
    assert all(
        e["error"]["label"] in ("SIDECAR_BAD_REQUEST", "SIDECAR_POLICY_DENIED") for e in errors
    )
    refused = [a for a in _audit(caplog) if a.get("decision") != "sign"]
    assert [(a["channel"], a["event"]) for a in refused] == [
        ("?", "subscribe"),
        ("spot.tickers", "?"),
        ("?", "api"),
    ]
