"""The verifying exchange as a pytest fixture, on a free loopback port."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote_plus

import pytest
from aiohttp import web

from sidecar.devtools.exchange import ExchangeState, create_exchange_app
from tests.leaks import register_secret


def gate_sign(
    api_key: str,
    secret: str,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    timestamp: str | None = None,
) -> dict[str, str]:
    """KEY/Timestamp/SIGN headers for a direct request to the exchange.

    Written out here from Gate's rules rather than borrowed from ``sidecar.gate.signing`` or the
    exchange's verifier, so a test using it checks one of them instead of trusting it.
    """
    ts = timestamp if timestamp is not None else str(int(time.time()))
    text = "\n".join(
        [method.upper(), path, unquote_plus(query), hashlib.sha512(body).hexdigest(), ts]
    )
    sign = hmac.new(secret.encode(), text.encode(), hashlib.sha512).hexdigest()
    return {"KEY": api_key, "Timestamp": ts, "SIGN": sign}


@dataclass
class RunningExchange:
    state: ExchangeState
    url: str  # http://127.0.0.1:PORT (no /api/v4)

    @property
    def api_url(self) -> str:
        return self.url + "/api/v4"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def new_key(self, *, uid: int | None = None) -> tuple[str, str]:
        """Register a random (api_key, secret) pair and return it."""
        api_key, secret = f"ex-{secrets.token_hex(8)}", secrets.token_hex(32)
        register_secret(secret)
        self.state.add_key(api_key, secret, uid=uid)
        return api_key, secret


@pytest.fixture
async def exchange() -> AsyncIterator[RunningExchange]:
    state = ExchangeState()
    runner = web.AppRunner(create_exchange_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield RunningExchange(state, f"http://127.0.0.1:{runner.addresses[0][1]}")
    finally:
        await runner.cleanup()
