"""The dead-man switch against the verifying exchange's countdown cancel-all: the exchange
cancels a quiet bot's open orders no later than ``timeout_s`` plus one re-arm interval (+1 s)
after its last request, or after the sidecar is SIGKILLed; a bot that keeps trading (braked or
not) is never cancelled; heartbeats; Gate unreachable shows in /readyz and /metrics; SIGTERM with
``on_shutdown: keep`` disarms.

Timeouts are small: the test exchange takes countdowns from 1 s (``countdown_min_s``), Gate
from 5 s."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.devtools.exchange.countdown import Fired
from tests.fixtures_exchange import RunningExchange, gate_sign
from tests.fixtures_ops import scrape
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.sync import eventually
from tests.test_guards_e2e import admin
from tests.test_ops_process import _write_config, sidecar_process

JSON = {"Content-Type": "application/json"}
SPOT = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "100"}
FUT = {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"}
TIMEOUT_S = 2  # re-armed every 2/3 s
BOUND_S = TIMEOUT_S + TIMEOUT_S / 3 + 1  # the acceptance bound after the last request


def dead_man(**extra: Any) -> dict[str, Any]:
    return {"timeout_s": TIMEOUT_S, "scopes": ["spot", "futures/usdt"], **extra}


async def request(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url + path, data=None if body is None else json.dumps(body),
                     headers=JSON) as resp,
    ):  # fmt: skip
        return resp.status, await resp.json()


def open_orders(exchange: RunningExchange, api_key: str) -> int:
    account = exchange.state.accounts[api_key]
    spot = [o for o in account.spot_orders.values() if o["status"] == "open"]
    fut = [o for o in account.futures_orders.values() if o["status"] == "open"]
    return len(spot) + len(fut)


def fired(exchange: RunningExchange, api_key: str) -> list[Fired]:
    return [f for f in exchange.state.countdowns_fired if f.api_key == api_key]


async def place_both(url: str) -> None:
    assert (await request(url, "POST", "/api/v4/spot/orders", SPOT))[0] == 201
    assert (await request(url, "POST", "/api/v4/futures/usdt/orders", FUT))[0] == 201


def bot_key(exchange: RunningExchange, **extra: Any) -> tuple[Any, dict[str, str], str]:
    exchange.state.countdown_min_s = 1
    entry, environ, api_key, secret = env_key("bot", "full-trading", **extra)
    exchange.state.add_key(api_key, secret)
    return make_config(exchange.url, [entry]), environ, api_key


async def test_the_exchange_cancels_open_orders_when_its_countdown_runs_out(
    exchange: RunningExchange,
) -> None:
    exchange.state.countdown_min_s = 1
    api_key, secret = exchange.new_key()

    async def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        raw = json.dumps(body).encode()
        headers = {**JSON, **gate_sign(api_key, secret, method, "/api/v4" + path, "", raw)}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, exchange.api_url + path, data=raw, headers=headers) as resp,
        ):
            return resp.status, await resp.json()

    assert (await call("POST", "/spot/orders", SPOT))[0] == 201
    status, doc = await call("POST", "/spot/countdown_cancel_all", {"timeout": 0.5})
    assert status == 400  # whole seconds only
    status, doc = await call("POST", "/spot/countdown_cancel_all", {"timeout": 1})
    assert status == 200 and doc["triggerTime"] > time.time() * 1000
    assert (await call("POST", "/spot/countdown_cancel_all", {"timeout": 0}))[0] == 200
    await asyncio.sleep(1.3)  # hold: past the disarmed 1 s countdown: nothing may fire
    assert open_orders(exchange, api_key) == 1  # disarmed: nothing cancelled
    assert (await call("POST", "/spot/countdown_cancel_all", {"timeout": 1}))[0] == 200
    await eventually(lambda: open_orders(exchange, api_key) == 0, 5, "countdown cancelled")
    exchange.state.countdown_min_s = 5
    assert (await call("POST", "/spot/countdown_cancel_all", {"timeout": 4}))[0] == 400


async def test_a_quiet_bot_is_cancelled_in_time_and_a_trading_one_never(
    exchange: RunningExchange,
) -> None:
    config, environ, api_key = bot_key(exchange, dead_man=dead_man())
    async with running_sidecar(config, environ) as sidecar:
        url = sidecar.url("bot")
        await place_both(url)
        # A bot that keeps trading (reads and orders, then braked: cancels and reads only)
        # for three timeouts: never cancelled.
        until = time.monotonic() + 3 * TIMEOUT_S
        braked = False
        while time.monotonic() < until:
            if not braked and time.monotonic() > until - 1.5 * TIMEOUT_S:
                assert (await admin(sidecar, "POST", "bot"))[0] == 200
                braked = True
            await request(url, "GET", "/api/v4/spot/open_orders")
            last = time.time()  # the bot's last request so far
            await asyncio.sleep(0.4)  # pace: the bot's request rate
        assert open_orders(exchange, api_key) == 2 and fired(exchange, api_key) == []
        samples = await scrape(sidecar.admin_url)
        armed = ("gate_sidecar_dead_man_armed", (("key", "bot"), ("scope", "futures/usdt")))
        assert samples[armed] == 1
        fires = ("gate_sidecar_dead_man_fires_in_seconds", (("key", "bot"), ("scope", "spot")))
        assert 0 < samples[fires] <= TIMEOUT_S
        async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/readyz") as r:
            ready = await r.json()
        assert ready["keys"]["bot"]["dead_man"]["spot"]["armed"] is True
        # The bot falls silent: both scopes are cancelled within the bound, not before the
        # timeout.
        await eventually(lambda: open_orders(exchange, api_key) == 0, BOUND_S + 2, "cancelled")
        late = max(f.at for f in fired(exchange, api_key)) - last
        print(f"quiet bot: cancelled {late:.2f} s after its last request (bound {BOUND_S:.2f})")
        assert TIMEOUT_S - 0.2 <= late <= BOUND_S, late
        assert {f.scope for f in fired(exchange, api_key)} == {"spot", "futures/usdt"}
        # It comes back: armed again at once.
        assert (await admin(sidecar, "DELETE", "bot"))[0] == 200
        await place_both(url)
        await eventually(lambda: len(exchange.state.countdowns) == 2, 3, "armed again")


# The bot: the official SDK, holding no secret, in a process of its own; it prints the time after
# each answer, so the test knows when its last request was.
BOT = """
import sys, time
import gate_api
client = gate_api.ApiClient(gate_api.Configuration(host=sys.argv[1] + "/api/v4"))
spot, futures = gate_api.SpotApi(client), gate_api.FuturesApi(client)
spot.create_order(gate_api.Order(currency_pair="BTC_USDT", side="buy", amount="1", price="100"))
futures.create_futures_order(
    "usdt", gate_api.FuturesOrder(contract="BTC_USDT", size=1, price="60000", tif="gtc")
)
for _ in range(200):  # bounded: the test kills it long before
    spot.list_orders("BTC_USDT", "open")
    print(time.time(), flush=True)
    time.sleep(0.3)  # pace: the bot's request rate
"""


async def test_a_bot_killed_mid_run_has_its_orders_cancelled_in_time(
    exchange: RunningExchange,
) -> None:
    config, environ, api_key = bot_key(exchange, dead_man=dead_man())
    async with running_sidecar(config, environ) as sidecar:
        bot = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOT, sidecar.url("bot"), stdout=asyncio.subprocess.PIPE
        )
        assert bot.stdout is not None
        try:
            last = 0.0
            for _ in range(8):  # trading for more than three re-arm intervals
                line = await asyncio.wait_for(bot.stdout.readline(), 10)
                last = float(line)
            assert open_orders(exchange, api_key) == 2 and fired(exchange, api_key) == []
        finally:
            bot.kill()
            await bot.wait()
        rest = await bot.stdout.read()
        if rest.strip():
            last = float(rest.split()[-1])  # an answer that came in just before the kill
        await eventually(lambda: open_orders(exchange, api_key) == 0, BOUND_S + 2, "cancelled")
        late = max(f.at for f in fired(exchange, api_key)) - last
        print(f"killed bot: cancelled {late:.2f} s after its last request (bound {BOUND_S:.2f})")
        assert TIMEOUT_S - 0.2 <= late <= BOUND_S, late


async def test_a_sigkilled_sidecar_leaves_the_countdown_to_cancel_the_orders(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    exchange.state.countdown_min_s = 1
    entry, environ, api_key, secret = env_key("bot", "full-trading", dead_man=dead_man())
    exchange.state.add_key(api_key, secret)
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, [entry])
    async with sidecar_process(config, environ) as sp:
        url = sp.urls()["bot"]
        await place_both(url)
        for _ in range(4):  # a bot trading along, over more than one re-arm
            await request(url, "GET", "/api/v4/spot/open_orders")
            await asyncio.sleep(0.3)  # pace: the bot's request rate
        await eventually(lambda: len(exchange.state.countdowns) == 2, 3, "armed")
        sp.send(signal.SIGKILL)
        killed = time.time()
        await sp.proc.wait()
        await eventually(lambda: open_orders(exchange, api_key) == 0, BOUND_S + 2, "cancelled")
        late = max(f.at for f in fired(exchange, api_key)) - killed
        print(f"SIGKILLed sidecar: cancelled {late:.2f} s after the kill (bound {BOUND_S:.2f})")
        assert late <= BOUND_S, late


async def test_heartbeats_keep_it_armed_and_traffic_alone_does_not(
    exchange: RunningExchange,
) -> None:
    config, environ, api_key = bot_key(exchange, dead_man=dead_man(alive="heartbeat"))
    async with running_sidecar(config, environ) as sidecar:
        url = sidecar.url("bot")
        await place_both(url)
        status, doc = await request(url, "POST", "/sidecar/v1/heartbeat", {})
        assert status == 200 and doc["key"] == "bot" and set(doc["scopes"]) == {
            "spot", "futures/usdt",
        }  # fmt: skip
        until = time.monotonic() + 2 * TIMEOUT_S
        while time.monotonic() < until:
            assert (await request(url, "POST", "/sidecar/v1/heartbeat", {}))[0] == 200
            await asyncio.sleep(0.4)  # pace: a heartbeat every 0.4 s for two timeouts
        assert open_orders(exchange, api_key) == 2
        # Orders and reads without heartbeats: not a sign of life for alive: heartbeat.
        last = time.time()
        while open_orders(exchange, api_key) and time.time() - last < BOUND_S + 2:
            await request(url, "GET", "/api/v4/spot/open_orders")
            await asyncio.sleep(0.3)  # pace: the bot reads on, without a heartbeat
        assert open_orders(exchange, api_key) == 0
        assert max(f.at for f in fired(exchange, api_key)) - last <= BOUND_S
        assert (await request(url, "GET", "/sidecar/v1/heartbeat"))[0] == 400  # POST only


async def test_no_dead_man_no_heartbeat_endpoint(exchange: RunningExchange) -> None:
    config, environ, _ = bot_key(exchange)
    async with running_sidecar(config, environ) as sidecar:
        status, doc = await request(sidecar.url("bot"), "POST", "/sidecar/v1/heartbeat", {})
        assert status == 404 and doc["label"] == "SIDECAR_NOT_FOUND"


async def test_gate_refusing_the_countdown_is_retried_logged_and_shown(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    config, environ, api_key = bot_key(exchange, dead_man=dead_man())
    exchange.state.remove_key(api_key)  # Gate does not know the key: every arm is refused
    async with running_sidecar(config, environ) as sidecar:
        url = sidecar.url("bot")
        await request(url, "GET", "/api/v4/spot/accounts")  # a sign of life: arm

        def arms() -> int:
            return sum(
                1 for r in exchange.state.requests if r.raw_path.endswith("countdown_cancel_all")
            )

        await eventually(lambda: arms() >= 6, 10, "retried")
        async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/readyz") as r:
            ready = await r.json()
        spot = ready["keys"]["bot"]["dead_man"]["spot"]
        assert spot["armed"] is False and spot["error"].startswith("Gate answered 401")
        samples = await scrape(sidecar.admin_url)
        armed = ("gate_sidecar_dead_man_armed", (("key", "bot"), ("scope", "spot")))
        assert samples[armed] == 0
    warnings = [r for r in caplog.records if "cannot arm the countdown" in r.getMessage()]
    assert 1 <= len(warnings) <= 4  # once per scope, not once per retry


async def test_sigterm_with_on_shutdown_keep_disarms_and_cancel_leaves_it_armed(
    exchange: RunningExchange,
) -> None:
    for on_shutdown, left in (("keep", 0), ("cancel", 2)):
        config, environ, api_key = bot_key(exchange, dead_man=dead_man(on_shutdown=on_shutdown))
        async with running_sidecar(config, environ) as sidecar:
            await place_both(sidecar.url("bot"))
            await eventually(
                lambda: sum(1 for k, _ in exchange.state.countdowns if k == api_key) == 2,  # noqa: B023
                3,
                "armed",
            )
        mine = [s for k, s in exchange.state.countdowns if k == api_key]
        assert len(mine) == left, (on_shutdown, mine)
