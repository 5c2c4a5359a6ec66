"""The admin listener: /healthz, /readyz (naming what is missing), never on a key's listener."""

from __future__ import annotations

import json

import aiohttp

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import call, ops_setup
from tests.fixtures_sidecar import env_key, make_config, running_sidecar


async def _get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def test_healthz_and_readyz_answer_200_when_every_key_can_sign(
    exchange: RunningExchange,
) -> None:
    async with ops_setup(exchange, {"a": "read-only", "b": "futures-only"}) as s:
        assert await _get_json(s.sidecar.admin_url + "/healthz") == (200, {"status": "ok"})
        status, body = await _get_json(s.sidecar.admin_url + "/readyz")
        url_a = s.sidecar.url("a")
    assert status == 200
    assert body["ready"] is True and body["missing"] == [] and body["problems"] == []
    keys = body["keys"]
    assert isinstance(keys, dict) and set(keys) == {"a", "b"}
    assert keys["a"]["listen"] == url_a and keys["a"]["version"] == "env"


async def test_readyz_is_503_and_names_a_key_without_a_secret(exchange: RunningExchange) -> None:
    with_secret, environ, _, secret = env_key("good", "read-only")
    without, _, _, _ = env_key("empty", "read-only")
    config = make_config(exchange.url, [with_secret, without])
    async with running_sidecar(config, environ) as sidecar:
        status, body = await _get_json(sidecar.admin_url + "/readyz")
    assert status == 503 and body["ready"] is False
    assert body["missing"] == ["empty"]
    assert body["problems"] == [
        "empty: key empty has no usable secret "
        "(environment variables $EMPTY_KEY and $EMPTY_SECRET are not set)"
    ]
    assert secret not in json.dumps(body)


async def test_readyz_is_503_and_names_a_listener_that_is_not_open(
    exchange: RunningExchange,
) -> None:
    async with ops_setup(exchange, {"a": "read-only", "b": "read-only"}) as s:
        await s.sidecar.sidecar.keys.stop("b")  # as if its listener had failed
        status, body = await _get_json(s.sidecar.admin_url + "/readyz")
    assert status == 503
    assert body["missing"] == ["b"] and body["problems"] == ["b: listener 127.0.0.1:0 not open"]


async def test_admin_endpoints_are_not_on_a_keys_listener(exchange: RunningExchange) -> None:
    async with ops_setup(exchange, {"a": "full-trading"}) as s:
        for path in ("/healthz", "/readyz", "/metrics"):
            status, body = await call("GET", s.url("a", path))
            assert status == 404 and json.loads(body)["label"] == "SIDECAR_NOT_FOUND"
    assert exchange.state.requests == []
