"""The test exchange's sub-account key endpoints, driven by the official SDK (gate-api 7.2.161,
``SubAccountApi`` and ``SubAccountKey``) as Gate's own client, and by raw signed requests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import gate_api
import pytest

from tests.fixtures_exchange import RunningExchange, gate_sign
from tests.leaks import register_secret

UID = 10002345


def _api(exchange: RunningExchange, key: tuple[str, str]) -> Any:
    client = gate_api.ApiClient(
        gate_api.Configuration(host=exchange.api_url, key=key[0], secret=key[1])
    )
    return gate_api.SubAccountApi(client)


def _perms(*pairs: tuple[str, bool]) -> list[Any]:
    return [gate_api.SubAccountKeyPerms(name=n, read_only=ro) for n, ro in pairs]


async def _signed(
    exchange: RunningExchange, key: tuple[str, str], method: str, path: str
) -> tuple[int, Any]:
    headers = gate_sign(key[0], key[1], method, path)
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, exchange.url + path, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def _sdk_lifecycle(exchange: RunningExchange, main: tuple[str, str]) -> dict[str, Any]:
    api = _api(exchange, main)
    body = gate_api.SubAccountKey(
        mode=1, name="gs-bot-1", perms=_perms(("futures", False)), ip_whitelist=["203.0.113.7"]
    )
    raw = api.create_sub_account_keys(UID, body, _preload_content=False)
    created: dict[str, Any] = json.loads(raw.data)
    register_secret(created["secret"])
    assert len(created["secret"]) == 64  # only in the create answer, which the model drops
    key = created["key"]
    typed = api.get_sub_account_key(UID, key)
    assert (typed.name, typed.user_id, typed.state, typed.ip_whitelist) == (
        "gs-bot-1",
        UID,
        1,
        ["203.0.113.7"],
    )
    assert [(p.name, p.read_only) for p in typed.perms] == [("futures", False)]
    listed = api.list_sub_account_keys(UID)
    assert [k.key for k in listed] == [key]
    assert "secret" not in json.loads(
        api.get_sub_account_key(UID, key, _preload_content=False).data
    )
    # PUT replaces the whole object: what the body leaves out is cleared
    api.update_sub_account_keys(UID, key, gate_api.SubAccountKey(name="renamed"))
    after = api.get_sub_account_key(UID, key)
    assert (after.name, after.perms, after.ip_whitelist) == ("renamed", [], [])
    api.lock_sub_account(UID)
    assert api.get_sub_account_key(UID, key).state == 2
    api.unlock_sub_account(UID)
    assert api.get_sub_account_key(UID, key).state == 1
    api.delete_sub_account_keys(UID, key)
    with pytest.raises(gate_api.exceptions.ApiException) as gone:
        api.get_sub_account_key(UID, key)
    assert gone.value.status == 404
    return created


async def test_the_official_sdk_manages_sub_account_keys(exchange: RunningExchange) -> None:
    main = exchange.new_key(uid=10001)
    await asyncio.to_thread(_sdk_lifecycle, exchange, main)
    assert exchange.state.sub_accounts.keys == {}


async def test_activation_whitelist_last_access_lock_and_limits(exchange: RunningExchange) -> None:
    subs = exchange.state.sub_accounts
    subs.activation_delay_s = 0.4
    subs.source_address = "203.0.113.7"
    main = exchange.new_key(uid=10001)
    api = _api(exchange, main)

    def mint(ips: list[str]) -> tuple[str, str]:
        body = gate_api.SubAccountKey(name="k", perms=_perms(("account", True)), ip_whitelist=ips)
        doc = json.loads(api.create_sub_account_keys(UID, body, _preload_content=False).data)
        register_secret(doc["secret"])
        return doc["key"], doc["secret"]

    good = await asyncio.to_thread(mint, ["203.0.113.7"])
    elsewhere = await asyncio.to_thread(mint, ["198.51.100.1"])
    detail = "/api/v4/account/detail"
    status, doc = await _signed(exchange, good, "GET", detail)
    assert (status, doc["label"]) == (401, "INVALID_KEY")  # not active yet
    await asyncio.sleep(0.45)  # hold: still inside the activation delay: nothing may change
    assert subs.keys[good[0]].last_access == 0
    status, doc = await _signed(exchange, good, "GET", detail)
    assert status == 200 and subs.keys[good[0]].last_access > 0
    status, doc = await _signed(exchange, elsewhere, "GET", detail)
    assert (status, doc["label"]) == (401, "IP_FORBIDDEN")
    # its permissions: account read-only, nothing else
    status, doc = await _signed(exchange, good, "GET", "/api/v4/spot/accounts")
    assert (status, doc["label"]) == (401, "FORBIDDEN")
    status, doc = await _signed(exchange, good, "POST", "/api/v4/account/whatever")
    assert (status, doc["label"]) == (401, "READ_ONLY")
    # a sub-account key cannot manage keys
    status, doc = await _signed(exchange, good, "GET", f"/api/v4/sub_accounts/{UID}/keys")
    assert (status, doc["label"]) == (403, "FORBIDDEN")
    await asyncio.to_thread(api.lock_sub_account, UID)
    status, doc = await _signed(exchange, good, "GET", detail)
    assert (status, doc["label"]) == (401, "ACCOUNT_LOCKED")
    await asyncio.to_thread(api.unlock_sub_account, UID)
    status, _ = await _signed(exchange, good, "GET", detail)
    assert status == 200
    # at most 20 keys per account
    for _ in range(18):
        await asyncio.to_thread(mint, [])
    with pytest.raises(gate_api.exceptions.ApiException) as full:
        await asyncio.to_thread(mint, [])
    assert full.value.status == 400 and "20" in full.value.body


async def test_bad_bodies_are_refused(exchange: RunningExchange) -> None:
    main = exchange.new_key(uid=10001)
    path = f"/api/v4/sub_accounts/{UID}/keys"
    for body in (
        b'{"perms":[{"name":"withdraw"}]}',
        b'{"ip_whitelist":["10.0.0.0/8"]}',
        b'{"mode":3}',
        b'{"perms":[{"name":"spot","read_only":"yes"}]}',
    ):
        headers = gate_sign(main[0], main[1], "POST", path, body=body)
        headers["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession() as http,
            http.post(exchange.url + path, data=body, headers=headers) as resp,
        ):
            doc = await resp.json()
        assert (resp.status, doc["label"]) == (400, "INVALID_PARAM_VALUE"), body
    assert exchange.state.sub_accounts.keys == {}
