"""The whole sidecar with a transit-backed key: bots through it, the verifying exchange behind it.

The secret is imported into a real OpenBao's transit engine and exists nowhere else in the
sidecar: the exchange accepting the requests is the proof that transit's HMAC is Gate's SIGN.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import gate_api
import pytest
from gate_api.exceptions import GateApiException

from sidecar.vault.session import VaultSession
from tests.fixtures_bao import Bao, LeakCheck, RaftBao, unique
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.fixtures_transit import Transit, all_encodings, enable_transit, gate_secret, scan
from tests.sync import eventually

INTERVAL = 1.0
PATH = "/api/v4/spot/accounts"
LATENCY_REQUESTS = 200


def transit_entry(
    transit: Transit, key: str, policy: str = "full-trading", **source: str
) -> dict[str, Any]:
    return {
        "name": "bot",
        "source": {"vault_transit": {"key": key, "mount": transit.mount, **source}},
        "policy": policy,
    }


def vault_section(bao: Bao, token_file: Path) -> dict[str, Any]:
    return {
        "address": bao.addr,
        "refresh_interval_s": INTERVAL,
        "timeout_s": 5,
        "auth": {"method": "token", "token_file": str(token_file)},
    }


@contextlib.asynccontextmanager
async def sidecar_with(
    exchange: RunningExchange,
    transit: Transit,
    tmp: Path,
    entries: list[dict[str, Any]],
    policies: list[str] | None = None,
    environ: dict[str, str] | None = None,
    **sections: Any,
) -> AsyncIterator[RunningSidecar]:
    token_file = transit.token_file(tmp, policies)
    vault = vault_section(transit.bao, token_file)
    config = make_config(exchange.url, entries, vault=vault, **sections)
    async with running_sidecar(config, environ) as sidecar:
        await eventually(lambda: sidecar.sidecar.keys["bot"].runtime.slot.ready, 10, "ready")
        yield sidecar


def session_of(sidecar: RunningSidecar) -> VaultSession:
    vault = sidecar.sidecar.secrets.vault
    assert vault is not None
    return vault


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes, float]:
    start = time.monotonic()
    async with http.get(url) as resp:
        body = await resp.read()
        return resp.status, body, time.monotonic() - start


def forwarded(exchange: RunningExchange, api_key: str) -> int:
    return sum(1 for r in exchange.state.requests if r.api_key == api_key)


# -- the official SDK as a bot ------------------------------------------------------------------


def bot_session(base_url: str) -> dict[str, Any]:
    """A trading session with the official SDK and no credentials (runs in a thread)."""
    client = gate_api.ApiClient(gate_api.Configuration(host=base_url + "/api/v4"))
    spot, futures = gate_api.SpotApi(client), gate_api.FuturesApi(client)
    seen: dict[str, Any] = {"accounts": spot.list_spot_accounts()}
    order = spot.create_order(
        gate_api.Order(currency_pair="BTC_USDT", side="buy", amount="0.001", price="60000")
    )
    seen["open"] = [o.id for o in spot.list_orders("BTC_USDT", "open")]
    seen["cancelled"] = spot.cancel_order(order.id, "BTC_USDT").status
    seen["order_id"] = order.id
    forder = futures.create_futures_order(
        "usdt", gate_api.FuturesOrder(contract="BTC_USDT", size=1, price="60000")
    )
    seen["futures_open"] = [o.id for o in futures.list_futures_orders("usdt", "open")]
    seen["futures_order_id"] = forder.id
    try:
        gate_api.WithdrawalApi(client).withdraw(
            gate_api.LedgerRecord(currency="USDT", amount="1", address="x", chain="TRX")
        )
    except GateApiException as exc:
        seen["withdraw"] = (exc.status, exc.label)
    return seen


async def test_the_official_sdk_trades_through_a_transit_key_the_sidecar_never_holds(
    exchange: RunningExchange,
    transit: Transit,
    leaks: LeakCheck,
    tmp_path: Path,
) -> None:
    api_key, secret = exchange.new_key()
    leaks.add(**all_encodings(secret), root=transit.bao.root_token)
    await transit.aimport("gate-bot", secret)
    policy = transit.policy("gate-bot")
    entries = [transit_entry(transit, "gate-bot", api_key=api_key)]
    async with sidecar_with(exchange, transit, tmp_path, entries, [policy]) as sidecar:
        seen = await asyncio.to_thread(bot_session, sidecar.url("bot"))
        assert "USDT" in {a.currency for a in seen["accounts"]}
        assert seen["open"] == [seen["order_id"]] and seen["cancelled"] == "cancelled"
        assert seen["futures_open"] == [seen["futures_order_id"]]
        assert seen["withdraw"][0] == 403  # the sidecar's own refusal, never signed
        assert session_of(sidecar).ready
    verdicts = {r.verdict for r in exchange.state.requests if r.api_key == api_key}
    assert verdicts == {"ok"}, verdicts
    assert len(exchange.state.verified(api_key)) >= 5


# -- rotation and the canary ----------------------------------------------------------------------


async def test_a_rotation_through_kv_and_transit_is_taken_only_once_gate_accepts_it(
    exchange: RunningExchange,
    transit: Transit,
    leaks: LeakCheck,
    tmp_path: Path,
) -> None:
    path = unique("gate/transit-bot")
    old_key, old_secret = exchange.new_key()
    new_key, new_secret = exchange.new_key()
    bogus = gate_secret()
    leaks.add(old=old_secret, new=new_secret, bogus=bogus, root=transit.bao.root_token)
    await transit.bao.aput(path, {"key": old_key})
    await transit.aimport("gate-bot", old_secret)
    policy = transit.policy("gate-bot", api_key_path=path)
    entries = [transit_entry(transit, "gate-bot", api_key_path=path)]
    statuses: list[int] = []
    async with (
        sidecar_with(exchange, transit, tmp_path, entries, [policy]) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        slot = sidecar.sidecar.keys["bot"].runtime.slot
        assert slot.version == "transit:v1"

        async def steady(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                statuses.append((await get(http, sidecar.url("bot") + PATH))[0])
                await asyncio.sleep(0.02)  # pace: steady traffic, about 50 requests a second

        # The runbook: the new key on Gate, its KEY into KV, its secret as a new version.
        # Between the two writes the pair is mixed: the canary refuses it, bots never see it.
        await transit.bao.aput(path, {"key": new_key})
        await steady(INTERVAL + 0.5)
        assert slot.current().api_key == old_key
        await transit.aimport("gate-bot", new_secret, rotate=True)
        await eventually(lambda: slot.version == "transit:v2", INTERVAL + 1.5, "rotated")
        assert slot.current().api_key == new_key
        # A version Gate does not know is never switched to.
        await transit.aimport("gate-bot", bogus, rotate=True)
        await steady(2 * INTERVAL + 0.5)
        assert slot.version == "transit:v2" and "rejected by canary" in (slot.last_error or "")
    assert statuses and set(statuses) == {200}
    # The mixed pair and the bogus version were each refused by the canary call alone.
    refused = [r for r in exchange.state.requests if r.verdict != "ok"]
    assert {r.verdict for r in refused} == {"INVALID_SIGNATURE"}
    assert {r.raw_path for r in refused} == {"/api/v4/account/detail"}
    assert {r.api_key for r in refused} == {new_key} and len(refused) >= 2


# -- revocation and outages -----------------------------------------------------------------------


async def test_deleting_the_transit_key_turns_requests_into_503_without_forwarding(
    exchange: RunningExchange,
    transit: Transit,
    leaks: LeakCheck,
    tmp_path: Path,
) -> None:
    api_key, secret = exchange.new_key()
    leaks.add(**all_encodings(secret), root=transit.bao.root_token)
    await transit.aimport("gate-bot", secret)
    entries = [transit_entry(transit, "gate-bot", api_key=api_key)]
    bodies: list[str] = []
    async with (
        sidecar_with(exchange, transit, tmp_path, entries) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        assert (await get(http, sidecar.url("bot") + PATH))[0] == 200
        before = forwarded(exchange, api_key)
        await asyncio.to_thread(transit.delete_key, "gate-bot")
        for _ in range(5):
            status, body, _took = await get(http, sidecar.url("bot") + PATH)
            bodies.append(body.decode())
            assert status == 503 and b"SIDECAR_KEY_UNAVAILABLE" in body
        assert forwarded(exchange, api_key) == before
        slot = sidecar.sidecar.keys["bot"].runtime.slot
        await eventually(lambda: not slot.ready, INTERVAL, "revoked")
        async with http.get(sidecar.admin_url + "/readyz") as resp:
            assert resp.status == 503
            bodies.append(await resp.text())
    assert not scan(bodies, all_encodings(secret))


async def test_with_vault_stopped_requests_fail_fast_and_recover_when_it_is_back(
    exchange: RunningExchange,
    bao_raft: RaftBao,
    leaks: LeakCheck,
    tmp_path: Path,
) -> None:
    raft = enable_transit(bao_raft)
    api_key, secret = exchange.new_key()
    leaks.add(**all_encodings(secret), root=bao_raft.root_token)
    await raft.aimport("gate-bot", secret)
    entries = [transit_entry(raft, "gate-bot", api_key=api_key)]
    bodies: list[str] = []
    async with (
        sidecar_with(exchange, raft, tmp_path, entries) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        url = sidecar.url("bot") + PATH
        assert (await get(http, url))[0] == 200
        before = forwarded(exchange, api_key)
        await bao_raft.astop()
        for phase in ("stopped", "sealed"):
            times = []
            for _ in range(10):
                status, body, took = await get(http, url)
                assert status == 503 and b"SIDECAR_KEY_UNAVAILABLE" in body, (phase, body)
                bodies.append(body.decode())
                times.append(took)
            assert max(times) < 0.5, f"{phase}: slowest 503 took {max(times):.3f}s"
            if phase == "stopped":
                await bao_raft.astart()  # back, but sealed
        assert forwarded(exchange, api_key) == before
        await bao_raft.aunseal()
        unsealed = time.monotonic()

        async def signing() -> bool:
            return (await get(http, url))[0] == 200

        await eventually(signing, 10, "signing again after the unseal")
        recovered = time.monotonic() - unsealed
        assert recovered < 5
        assert [s for s, *_ in [await get(http, url) for _ in range(5)]] == [200] * 5
    assert not scan(bodies, all_encodings(secret))


# -- latency --------------------------------------------------------------------------------------


async def median_latency(http: aiohttp.ClientSession, url: str, count: int) -> float:
    for _ in range(10):  # warm up connections on every hop
        assert (await get(http, url))[0] == 200
    took = []
    for _ in range(count):
        status, _body, seconds = await get(http, url)
        assert status == 200
        took.append(seconds)
    return statistics.median(took)


async def test_transit_adds_about_one_loopback_vault_round_trip_per_request(
    exchange: RunningExchange,
    transit: Transit,
    leaks: LeakCheck,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_key, secret = exchange.new_key()
    leaks.add(**all_encodings(secret), root=transit.bao.root_token)
    await transit.aimport("gate-bot", secret)
    local, environ, _lk, _ls = env_key("local", "read-only")
    exchange.state.add_key(environ["LOCAL_KEY"], environ["LOCAL_SECRET"])
    entries = [transit_entry(transit, "gate-bot", "read-only", api_key=api_key), local]
    async with (
        sidecar_with(exchange, transit, tmp_path, entries, environ=environ) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        hmac_s = await median_latency(http, sidecar.url("local") + PATH, LATENCY_REQUESTS)
        transit_s = await median_latency(http, sidecar.url("bot") + PATH, LATENCY_REQUESTS)
    with capsys.disabled():
        print(
            f"\nmedian over {LATENCY_REQUESTS} requests through the sidecar: local HMAC "
            f"{hmac_s * 1000:.2f} ms, Vault transit {transit_s * 1000:.2f} ms "
            f"(+{(transit_s - hmac_s) * 1000:.2f} ms)"
        )
    assert transit_s < hmac_s + 0.025, "transit should cost one loopback round trip, not more"


# -- the secret never comes out -------------------------------------------------------------------


async def test_no_log_response_or_error_ever_contains_the_secret_or_a_token(
    exchange: RunningExchange,
    transit: Transit,
    leaks: LeakCheck,
    tmp_path: Path,
) -> None:
    """Every kind of answer the sidecar gives (signed, denied by policy, key revoked, admin
    pages) and every captured log line (``leaks``) is scanned for the secret in any encoding
    and for the Vault tokens."""
    api_key, secret = exchange.new_key()
    policy = transit.policy("gate-bot")
    await transit.aimport("gate-bot", secret)
    entries = [transit_entry(transit, "gate-bot", "read-only", api_key=api_key)]
    texts: list[str] = []
    async with (
        sidecar_with(exchange, transit, tmp_path, entries, [policy]) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        token = await session_of(sidecar).token()
        values = {**all_encodings(secret), "sidecar token": token, "root": transit.bao.root_token}
        leaks.add(**values)
        base = sidecar.url("bot")
        for method, url in [
            ("GET", base + PATH),
            ("GET", base + "/api/v4/spot/orders?currency_pair=BTC_USDT&status=open"),
            ("POST", base + "/api/v4/spot/orders"),  # denied by the read-only policy
            ("GET", sidecar.admin_url + "/readyz"),
            ("GET", sidecar.admin_url + "/metrics"),
        ]:
            async with http.request(method, url, data=b'{"x":1}') as resp:
                texts += [await resp.text(), str(resp.headers)]
        await asyncio.to_thread(transit.delete_policy, policy)  # revoked: 503s from now on

        async def refused() -> bool:
            async with http.get(base + PATH) as resp:
                texts.extend([await resp.text(), str(resp.headers)])
                return "SIDECAR_KEY_UNAVAILABLE" in texts[-2]

        await eventually(refused, 10, "the revoked key refused", step=0.2)
        for url in (sidecar.admin_url + "/readyz", sidecar.admin_url + "/metrics"):
            async with http.get(url) as resp:
                texts += [await resp.text(), str(resp.headers)]
        assert any("SIDECAR_POLICY_DENIED" in t for t in texts)
        slot = sidecar.sidecar.keys["bot"].runtime.slot
        texts += [repr(slot.credentials), str(slot.status()), repr(session_of(sidecar))]
    hits = scan(texts, values)
    assert not hits, f"found in responses or errors: {hits}"
