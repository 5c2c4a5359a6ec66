"""Faults, each with its expected answer, nothing lost or hung: an upstream that refuses, resets
mid-answer, answers late or answers 5xx; a bot that goes away mid-request; a secret file replaced
atomically and non-atomically while requests flow.

Vault killed (SIGKILL) with a refresh in flight, bots sending all along, is
tests/reliability/test_vault_kill.py; a stopped, then sealed Vault is tests/test_vault_outage.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.leaks import register_secret
from tests.reliability.harness import record_figure, size
from tests.sync import eventually

ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "1"}

Upstream = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_upstream(handler: Upstream) -> AsyncIterator[str]:
    """A raw TCP upstream on 127.0.0.1 that misbehaves as ``handler`` says."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def _sidecar_call(upstream: str, **upstream_cfg: Any) -> tuple[int, dict[str, Any], float]:
    entry, environ, _, _ = env_key("bot", "full-trading", canary={"enabled": False})
    config = make_config(upstream, [entry], upstream={"timeout_s": 1.0, **upstream_cfg})
    async with running_sidecar(config, environ) as sidecar, aiohttp.ClientSession() as http:
        started = time.perf_counter()
        async with http.get(sidecar.url("bot") + "/api/v4/spot/accounts") as resp:
            return resp.status, await resp.json(), time.perf_counter() - started


async def test_an_upstream_that_refuses_connections_is_502() -> None:
    async with fake_upstream(lambda r, w: asyncio.sleep(0)) as url:  # hold: answers nothing
        pass  # closed again: nothing listens on that port now
    status, body, _ = await _sidecar_call(url)
    assert (status, body["label"]) == (502, "SIDECAR_UPSTREAM_UNAVAILABLE")


async def test_an_upstream_that_resets_mid_answer_is_502() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n["
        )
        await writer.drain()
        writer.transport.abort()

    async with fake_upstream(reset) as url:
        status, body, _ = await _sidecar_call(url)
    assert (status, body["label"]) == (502, "SIDECAR_UPSTREAM_UNAVAILABLE")


async def test_an_upstream_answering_after_timeout_is_504_and_frees_its_slot() -> None:
    async def late_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await _read_head(reader)
                if b"/spot/accounts" in head:
                    await asyncio.sleep(3)  # pace: an upstream slower than timeout_s
                body = b"[]"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
                await writer.drain()

    entry, environ, _, _ = env_key("bot", "full-trading", canary={"enabled": False})
    async with fake_upstream(late_then_fast) as url:
        # One upstream connection only: a slot the timeout did not free would block the next call.
        config = make_config(url, [entry], upstream={"timeout_s": 0.5, "max_connections": 1})
        async with running_sidecar(config, environ) as sidecar, aiohttp.ClientSession() as http:
            base = sidecar.url("bot")
            started = time.perf_counter()
            async with http.get(base + "/api/v4/spot/accounts") as resp:
                assert (resp.status, (await resp.json())["label"]) == (
                    504,
                    "SIDECAR_UPSTREAM_TIMEOUT",
                )
            assert time.perf_counter() - started < 2.0
            async with http.get(base + "/api/v4/futures/usdt/accounts") as resp:
                assert resp.status == 200


async def test_an_upstream_5xx_is_relayed_as_is() -> None:
    async def unavailable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        body = json.dumps({"label": "SERVER_ERROR", "message": "try later"}).encode()
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    async with fake_upstream(unavailable) as url:
        status, body, _ = await _sidecar_call(url)
    assert (status, body) == (503, {"label": "SERVER_ERROR", "message": "try later"})


async def test_an_order_whose_bot_went_away_after_sending_it_is_still_placed_and_audited(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    """A POST that was whole when the bot disconnected is forwarded and completed: the sidecar
    cannot know whether the bot will retry, and cancelling mid-flight would leave the order's
    fate unknown. The audit line records Gate's answer (README: "A bot that disconnects")."""
    caplog.set_level(logging.INFO)
    entry, environ, api_key, secret = env_key("bot", "full-trading")
    exchange.state.add_key(api_key, secret)
    exchange.state.delays["/api/v4/spot/orders"] = 0.3
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        port = int(sidecar.url("bot").rsplit(":", 1)[1])
        body = json.dumps(ORDER).encode()
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v4/spot/orders HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (port, len(body), body)
        )
        await writer.drain()
        # The order is at the exchange, which holds its answer for 0.3 s: the bot goes away now.
        await eventually(
            lambda: any(r.raw_path == "/api/v4/spot/orders" for r in exchange.state.requests),
            5,
            "the order at the exchange",
        )
        writer.transport.abort()
        await eventually(
            lambda: any(r.name == "sidecar.audit" for r in caplog.records), 5, "the audit line"
        )
    placed = exchange.state.verified(api_key)
    assert [r.raw_path for r in placed] == ["/api/v4/spot/orders"]
    audits = [r.audit for r in caplog.records if r.name == "sidecar.audit"]  # type: ignore[attr-defined]
    assert [(a["status"], a["upstream_status"]) for a in audits] == [(201, 201)]
    # The sidecar's and aiohttp's own records: asyncio's "Task was destroyed" about a task an
    # earlier test left behind can be garbage-collected (and logged) during this one.
    ours = [r for r in caplog.records if r.name.startswith(("sidecar", "aiohttp"))]
    assert not [r for r in ours if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("atomic", "canary"),
    [(True, True), (False, True), (False, False)],
    ids=["atomic", "in-place", "in-place-no-canary"],
)
async def test_a_secret_file_replaced_while_requests_flow_is_never_read_half_written(
    exchange: RunningExchange, tmp_path: Path, atomic: bool, canary: bool
) -> None:
    pairs = []
    for _ in range(2):
        api_key, secret = f"file-{secrets.token_hex(6)}", secrets.token_hex(32)
        exchange.state.add_key(api_key, secret)
        register_secret(secret)
        pairs.append((api_key, secret))
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump({"key": pairs[0][0], "secret": pairs[0][1]}))
    entry = {
        "name": "bot",
        "source": {"file": {"path": str(path), "poll_interval_s": 0.01}},
        "policy": "read-only",
        "canary": {"enabled": canary},
    }
    rewrites = size(40, 400)

    async def rewrite() -> None:
        for i in range(rewrites):
            api_key, secret = pairs[(i + 1) % 2]
            text = yaml.safe_dump({"key": api_key, "secret": secret})
            if atomic:
                tmp = tmp_path / "gate.yaml.tmp"
                tmp.write_text(text)
                os.replace(tmp, path)
            else:  # truncate, write half, pause, write the rest: readers can see every stage
                with path.open("w") as f:
                    f.write(text[: len(text) // 2])
                    f.flush()
                    await asyncio.sleep(0.005)  # hold: the half-written file stays a moment
                    f.write(text[len(text) // 2 :])
            await asyncio.sleep(0.01)  # pace: about 100 rewrites a second

    async with running_sidecar(make_config(exchange.url, [entry]), {}) as sidecar:
        url = sidecar.url("bot") + "/api/v4/spot/accounts"
        writer = asyncio.create_task(rewrite())
        statuses: list[int] = []
        async with aiohttp.ClientSession() as http:
            while not writer.done():
                async with http.get(url) as resp:
                    statuses.append(resp.status)
        await writer
    # Every bot request was signed with a whole pair. (The canary's probes of half-written
    # pairs fail at the exchange: that is the canary refusing them before any bot request.)
    bot = [r for r in exchange.state.requests if r.raw_path == "/api/v4/spot/accounts"]
    assert set(statuses) == {200} and {r.verdict for r in bot} == {"ok"}
    probes = [r for r in exchange.state.requests if r.raw_path != "/api/v4/spot/accounts"]
    record_figure(
        f"file_rewrites_{'atomic' if atomic else 'in_place'}_{canary}_canary_refusals",
        sum(r.verdict != "ok" for r in probes),
    )
    record_figure(
        f"file_rewrites_{'atomic' if atomic else 'in_place'}_{canary}_requests", len(statuses)
    )
