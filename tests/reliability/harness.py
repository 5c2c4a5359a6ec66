"""The reliability suite's parts: sizes for `make test` and `make soak`, an exchange and a sidecar
on a thread of their own (so synchronous property tests can drive them), raw requests, and the
figures file `make soak` writes.

``SIDECAR_SOAK=1`` (set by `make soak`) selects the long sizes; without it every test is short
enough for the default suite. Everything talks to 127.0.0.1 only, and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from sidecar.devtools.exchange import ExchangeState, create_exchange_app
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar

SOAK = os.environ.get("SIDECAR_SOAK") == "1"
FIGURES = Path(os.environ.get("SIDECAR_SOAK_FIGURES", "soak-figures.json"))

T = TypeVar("T")


def size(short: int, soak: int) -> int:
    return soak if SOAK else short


def record_figure(name: str, value: Any) -> None:
    """Keep a measured figure for the reliability table (written only by `make soak`)."""
    print(f"FIGURE {name}: {value}")
    if not SOAK:
        return
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[name] = value
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@dataclass
class Stack:
    """A running exchange and sidecar, driven from another thread through :meth:`run`."""

    loop: asyncio.AbstractEventLoop
    exchange: ExchangeState
    sidecar: RunningSidecar
    ports: dict[str, int]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextlib.contextmanager
def background_stack(
    policies: dict[str, Any], server: dict[str, Any] | None = None
) -> Iterator[Stack]:
    """The verifying exchange and a sidecar with one key per policy, on their own loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="stack", daemon=True)
    thread.start()
    stop = asyncio.Event()
    ready: asyncio.Future[Stack] = loop.create_future()

    async def serve() -> None:
        state = ExchangeState()
        runner = web.AppRunner(create_exchange_app(state), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        entries, environ = [], {}
        for name, policy in policies.items():
            entry, env, api_key, secret = env_key(name, policy)
            state.add_key(api_key, secret)
            entries.append(entry)
            environ.update(env)
        config = make_config(url, entries, server=server or {})
        try:
            async with running_sidecar(config, environ) as sidecar:
                ports = {n: int(sidecar.url(n).rsplit(":", 1)[1]) for n in policies}
                ready.set_result(Stack(loop, state, sidecar, ports))
                await stop.wait()
        finally:
            await runner.cleanup()

    task = asyncio.run_coroutine_threadsafe(serve(), loop)
    try:
        stack = asyncio.run_coroutine_threadsafe(_wait(ready), loop).result(30)
        yield stack
    finally:
        loop.call_soon_threadsafe(stop.set)
        with contextlib.suppress(Exception):
            task.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _wait(future: asyncio.Future[T]) -> T:
    return await future


def raw_request(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send ``payload`` as is on a new connection; everything the server answered until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)  # with Connection: close; no half-close (aiohttp closes on EOF)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
