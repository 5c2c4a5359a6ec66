"""The verifying exchange as a pytest fixture, on a free loopback port."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from sidecar.exchange import ExchangeState, create_exchange_app


@dataclass
class RunningExchange:
    state: ExchangeState
    url: str  # http://127.0.0.1:PORT (no /api/v4)

    def new_key(self) -> tuple[str, str]:
        """Register a random (api_key, secret) pair and return it."""
        api_key, secret = f"ex-{secrets.token_hex(8)}", secrets.token_hex(32)
        self.state.add_key(api_key, secret)
        return api_key, secret


@pytest.fixture
async def exchange() -> AsyncIterator[RunningExchange]:
    state = ExchangeState()
    runner = web.AppRunner(create_exchange_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield RunningExchange(state, f"http://127.0.0.1:{runner.addresses[0][1]}")
    finally:
        await runner.cleanup()
