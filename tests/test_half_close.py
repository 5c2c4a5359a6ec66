"""A bot that half-closes its connection after sending (``shutdown(SHUT_WR)``, as ``nc -N`` and
some HTTP/1.0 clients do) still gets the answers to what it sent: the order has reached Gate,
so losing its answer would leave the bot blind. A half-close before a request is whole forwards
nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.rawhttp import parse_response

PATH = "/api/v4/spot/accounts"


@pytest.fixture
async def sidecar(exchange: RunningExchange) -> AsyncIterator[RunningSidecar]:
    bot, env, key, secret = env_key("bot", "full-trading")
    exchange.state.add_key(key, secret)
    async with running_sidecar(make_config(exchange.url, [bot]), env) as running:
        yield running


async def _half_closed(sidecar: RunningSidecar, data: bytes) -> bytes:
    """Send ``data``, half-close, and read until the sidecar closes (bounded)."""
    port = URL(sidecar.url("bot")).port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.shutdown(socket.SHUT_WR)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def _get(port_host: str, extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (PATH.encode(), port_host.encode(), extra)


async def test_a_request_followed_by_a_half_close_is_answered(
    sidecar: RunningSidecar, exchange: RunningExchange
) -> None:
    host = URL(sidecar.url("bot")).raw_authority
    raw = await _half_closed(sidecar, _get(host))
    status, _, body = parse_response(raw)
    assert status == 200, body
    assert len(exchange.state.requests) == 1


async def test_pipelined_requests_followed_by_a_half_close_are_all_answered_in_order(
    sidecar: RunningSidecar, exchange: RunningExchange
) -> None:
    host = URL(sidecar.url("bot")).raw_authority
    refused = b"GET /api/v4/spot//accounts HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
    raw = await _half_closed(sidecar, _get(host) + refused + _get(host))
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert statuses == [b"200", b"400", b"200"], raw[:300]
    assert len(exchange.state.requests) == 2


async def test_a_half_close_before_the_request_is_whole_forwards_nothing(
    sidecar: RunningSidecar, exchange: RunningExchange
) -> None:
    host = URL(sidecar.url("bot")).raw_authority
    partial = b"POST /api/v4/spot/orders HTTP/1.1\r\nHost: %s\r\n" % host.encode()
    partial += b'Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"currency_pair"'
    raw = await _half_closed(sidecar, partial)
    if raw:  # answered as a refusal (never a forwarded order) or just closed
        status, _, body = parse_response(raw)
        assert status >= 400 and json.loads(body)["label"].startswith("SIDECAR_")
    assert exchange.state.requests == []
