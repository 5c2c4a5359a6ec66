"""A sidecar whose WebSocket upstream is the verifying exchange, and a bot's socket to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.devtools.exchange import RecordedFrame
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.sync import eventually

RECV_TIMEOUT_S = 5.0


def ws_upstream(exchange: RunningExchange) -> dict[str, str]:
    base = exchange.url.replace("http://", "ws://")
    return {
        "spot": f"{base}/ws/v4/",
        "futures": f"{base}/v4/ws/{{settle}}",
        "delivery": f"{base}/v4/ws/delivery/{{settle}}",
        "options": f"{base}/v4/ws/options/{{settle}}",
    }


@dataclass
class WsBench:
    exchange: RunningExchange
    sidecar: RunningSidecar
    keys: dict[str, tuple[str, str]]  # name -> (api_key, secret)

    def ws_url(self, key: str, path: str = "/ws/v4/") -> str:
        return self.sidecar.url(key).replace("http://", "ws://") + path

    def frames(self, since: int = 0) -> list[RecordedFrame]:
        return self.exchange.state.ws_frames[since:]

    def mark(self) -> int:
        return len(self.exchange.state.ws_frames)


@contextlib.asynccontextmanager
async def ws_bench(
    exchange: RunningExchange, policies: dict[str, Any], ws: dict[str, Any] | None = None
) -> AsyncIterator[WsBench]:
    """One env-sourced key per entry of ``policies``, each with ``keys[].ws`` = ``ws``."""
    entries, environ, keys = [], {}, {}
    for name, policy in policies.items():
        entry, env, api_key, secret = env_key(name, policy, ws=ws or {})
        entries.append(entry)
        environ.update(env)
        keys[name] = (api_key, secret)
        exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, entries, upstream={"ws": ws_upstream(exchange)})
    async with running_sidecar(config, environ) as sidecar:
        yield WsBench(exchange, sidecar, keys)


def write_key_file(path: Path, exchange: RunningExchange) -> tuple[str, str]:
    """A new pair, registered at the exchange and written where a file source reads it."""
    api_key, secret = exchange.new_key()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": api_key, "secret": secret}))
    tmp.replace(path)
    return api_key, secret


@contextlib.asynccontextmanager
async def rotating_bench(
    exchange: RunningExchange, tmp: Path, ws: dict[str, Any]
) -> AsyncIterator[tuple[WsBench, Path]]:
    """One full-trading key ("rot") read from a file, so a test can rotate it."""
    path = tmp / f"key-{secrets.token_hex(3)}.json"
    api_key, secret = write_key_file(path, exchange)
    entry = {
        "name": "rot",
        "listen": "127.0.0.1:0",
        "source": {"file": {"path": str(path), "poll_interval_s": 30}},
        "policy": "full-trading",
        "ws": ws,
    }
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    async with running_sidecar(config, {}) as sidecar:
        yield WsBench(exchange, sidecar, {"rot": (api_key, secret)}), path


async def rotate(bench: WsBench, path: Path) -> tuple[str, str]:
    """Write a new pair and make the key's source take it now (canary included)."""
    pair = write_key_file(path, bench.exchange)
    handle = bench.sidecar.sidecar.keys["rot"]
    handle.source.refresh_now()

    def installed() -> bool:
        creds = handle.runtime.slot.credentials
        return creds is not None and creds.api_key == pair[0]

    await eventually(installed, 4, "the rotated pair installed", step=0.02)
    return pair


async def recv_json(
    ws: aiohttp.ClientWebSocketResponse,
    wanted: Callable[[dict[str, Any]], bool] = lambda doc: True,
    timeout: float = RECV_TIMEOUT_S,
    seen: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The next JSON frame ``wanted`` accepts (others are kept in ``seen`` when given)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"expected a text frame, got {msg.type!r} {msg.data!r}")
            doc = json.loads(msg.data)
            if wanted(doc):
                return dict(doc)
            if seen is not None:
                seen.append(doc)


async def wait_for(check: Callable[[], bool], timeout: float = RECV_TIMEOUT_S) -> None:
    await eventually(check, timeout, "condition", step=0.02)
