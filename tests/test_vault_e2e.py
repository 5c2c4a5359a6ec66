"""The whole sidecar with its keys in Vault, bots calling it, the verifying exchange behind it.

Each test runs a steady load (at least 50 requests a second, for the whole test) through a
key's listener and counts every answer that is not a 200: a rotation, a rejected rotation and a
Vault outage must all cost zero requests; a deletion must turn the key into 503s at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.vault.session import VaultSession
from tests.fixtures_bao import Bao, DevBao, LeakCheck, RaftBao, unique
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, make_config, running_sidecar
from tests.sync import eventually

INTERVAL = 1.0
RATE = 60.0  # requests per second offered; at least 50 must complete each second
PATH = "/api/v4/spot/accounts"


@dataclass
class Load:
    """Fires GETs at a steady rate (each on its own task, so one slow answer never lowers the
    rate) and records every status."""

    url: str
    rate: float = RATE
    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0
    pending: set[asyncio.Task[None]] = field(default_factory=set)  # requests in flight

    @property
    def failures(self) -> list[int]:
        return [s for s in self.statuses if s != 200]

    @property
    def achieved_rate(self) -> float:
        return len(self.statuses) / max(1e-9, self.stopped - self.started)

    async def _one(self, http: aiohttp.ClientSession) -> None:
        try:
            async with http.get(self.url) as resp:
                body = await resp.read()
                status = resp.status
        except aiohttp.ClientError:
            status, body = 0, b""
        self.statuses.append(status)
        if status != 200:
            self.bodies.append(body)

    async def settle(self) -> None:
        """Wait for the requests in flight now (not those sent later) to finish."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=15)

    async def run(self, stop: asyncio.Event) -> None:
        pending = self.pending
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            self.started = loop.time()
            tick = 0
            while not stop.is_set():
                task = asyncio.create_task(self._one(http))
                pending.add(task)
                task.add_done_callback(pending.discard)
                tick += 1
                delay = self.started + tick / self.rate - loop.time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, delay))
            if pending:
                await asyncio.wait(pending, timeout=15)
            self.stopped = loop.time()


@contextlib.asynccontextmanager
async def load_on(url: str) -> AsyncIterator[Load]:
    load, stop = Load(url), asyncio.Event()
    task = asyncio.create_task(load.run(stop))
    try:
        yield load
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def vault_entry(path: str, **extra: Any) -> dict[str, Any]:
    return {"name": "bot", "source": {"vault": {"path": path}}, "policy": "read-only", **extra}


def vault_section(bao: Bao, tmp: Path) -> dict[str, Any]:
    token_file = tmp / "vault-token"
    token_file.write_text(bao.root_token)
    return {
        "address": bao.addr,
        "refresh_interval_s": INTERVAL,
        "timeout_s": 5,
        "auth": {"method": "token", "token_file": str(token_file)},
    }


@contextlib.asynccontextmanager
async def sidecar_on_vault(
    exchange: RunningExchange, bao: Bao, path: str, tmp: Path, **extra: Any
) -> AsyncIterator[RunningSidecar]:
    config = make_config(exchange.url, [vault_entry(path, **extra)], vault=vault_section(bao, tmp))
    async with running_sidecar(config) as sidecar:
        yield sidecar


def session_of(sidecar: RunningSidecar) -> VaultSession:
    vault = sidecar.sidecar.secrets.vault
    assert vault is not None
    return vault


async def readyz(sidecar: RunningSidecar) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sidecar.admin_url + "/readyz") as resp,
    ):
        return resp.status, await resp.json()


def seen_key_since(exchange: RunningExchange, api_key: str, since: float) -> bool:
    return any(
        r.api_key == api_key and r.verdict == "ok" and r.raw_path == PATH and r.timestamp >= since
        for r in exchange.state.requests
    )


def assert_steady(load: Load) -> None:
    assert not load.failures, f"{len(load.failures)} failed requests: {load.bodies[:3]!r}"
    assert load.achieved_rate >= 50, f"only {load.achieved_rate:.0f} req/s"


async def test_a_rotation_under_load_loses_no_request_and_is_seen_within_the_interval(
    exchange: RunningExchange, bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path = unique("gate/bot")
    old_key, old_secret = exchange.new_key()
    bao_dev.put(path, {"key": old_key, "secret": old_secret})
    leaks.add(old=old_secret, root=bao_dev.root_token)
    async with sidecar_on_vault(exchange, bao_dev, path, tmp_path) as sidecar:
        await eventually(lambda: sidecar.sidecar.keys["bot"].runtime.slot.ready, 10, "ready")
        async with load_on(sidecar.url("bot") + PATH) as load:
            await asyncio.sleep(1.5)  # pace: steady load on the old pair before the rotation
            # The runbook: a new key on Gate first, then into Vault, then the old one goes.
            new_key, new_secret = exchange.new_key()
            leaks.add(new=new_secret)
            written = time.time()
            await bao_dev.aput(path, {"key": new_key, "secret": new_secret})
            await eventually(
                lambda: seen_key_since(exchange, new_key, written), INTERVAL + 1, "new key used"
            )
            assert time.time() - written <= INTERVAL + 1
            await load.settle()  # the requests in flight, some signed with the old pair, end
            exchange.state.remove_key(old_key)
            switched = time.time()
            await asyncio.sleep(1.5)  # pace: load goes on with the new pair alone
        assert_steady(load)
        assert not seen_key_since(exchange, old_key, switched)
        status, body = await readyz(sidecar)
        assert status == 200 and body["keys"]["bot"]["version"] == "2"


async def test_a_new_key_gate_rejects_is_not_switched_to_and_costs_no_request(
    exchange: RunningExchange, bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path = unique("gate/bot")
    good_key, good_secret = exchange.new_key()
    bao_dev.put(path, {"key": good_key, "secret": good_secret})
    unknown = {"key": "never-created-on-gate", "secret": "f" * 64}
    leaks.add(good=good_secret, bad=unknown["secret"], root=bao_dev.root_token)
    async with sidecar_on_vault(exchange, bao_dev, path, tmp_path) as sidecar:
        await eventually(lambda: sidecar.sidecar.keys["bot"].runtime.slot.ready, 10, "ready")
        async with load_on(sidecar.url("bot") + PATH) as load:
            await asyncio.sleep(1.0)  # pace: steady load before the bad key is written
            await bao_dev.aput(path, unknown)
            await eventually(
                lambda: (
                    len([r for r in exchange.state.requests if r.api_key == unknown["key"]]) >= 2
                ),
                2 * INTERVAL + 1,
                "canary tried at two refreshes",
            )
            await asyncio.sleep(0.5)  # pace: load goes on after the refusals
        assert_steady(load)
        canaries = [r for r in exchange.state.requests if r.api_key == unknown["key"]]
        assert {r.raw_path for r in canaries} == {"/api/v4/account/detail"}
        assert {r.verdict for r in canaries} == {"INVALID_KEY"}
        status, body = await readyz(sidecar)
        assert status == 200 and body["keys"]["bot"]["version"] == "1"
        assert "rejected by canary" in body["keys"]["bot"]["last_error"]


async def test_deleting_the_secret_in_vault_turns_the_key_into_503_within_the_interval(
    exchange: RunningExchange, bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path = unique("gate/bot")
    api_key, secret = exchange.new_key()
    bao_dev.put(path, {"key": api_key, "secret": secret})
    leaks.add(secret=secret, root=bao_dev.root_token)
    async with sidecar_on_vault(exchange, bao_dev, path, tmp_path) as sidecar:
        await eventually(lambda: sidecar.sidecar.keys["bot"].runtime.slot.ready, 10, "ready")
        url = sidecar.url("bot") + PATH
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200
            await asyncio.to_thread(
                bao_dev.admin().secrets.kv.v2.delete_latest_version_of_secret, path=path
            )

            async def status() -> int:
                async with http.get(url) as resp:
                    return resp.status

            async def refused() -> bool:
                return await status() != 200

            took = await eventually(refused, INTERVAL + 1, "refusing after the deletion")
            assert took <= INTERVAL + 1
            forwarded = len(exchange.state.requests)
            async with http.get(url) as resp:
                body = json.loads(await resp.read())
                assert resp.status == 503 and body["label"] == "SIDECAR_KEY_UNAVAILABLE"
            assert len(exchange.state.requests) == forwarded, "a 503 request reached the exchange"
        status_code, ready = await readyz(sidecar)
        assert status_code == 503 and ready["missing"] == ["bot"]


async def test_vault_stopped_then_restarted_sealed_and_unsealed_costs_no_request(
    exchange: RunningExchange, bao_raft: RaftBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path = unique("gate/bot")
    api_key, secret = exchange.new_key()
    bao_raft.put(path, {"key": api_key, "secret": secret})
    leaks.add(secret=secret, root=bao_raft.root_token)
    async with sidecar_on_vault(exchange, bao_raft, path, tmp_path) as sidecar:
        slot = sidecar.sidecar.keys["bot"].runtime.slot
        await eventually(lambda: slot.ready, 10, "ready")
        async with load_on(sidecar.url("bot") + PATH) as load:
            await asyncio.sleep(0.5)  # pace: steady load before the outage
            await bao_raft.astop()
            await asyncio.sleep(2.0)  # hold: Vault stays down for 2 s under load
            assert slot.stale_seconds >= 1.5
            status, body = await readyz(sidecar)
            assert status == 200 and body["keys"]["bot"]["stale_s"] >= 1.5
            await bao_raft.astart()
            await asyncio.sleep(1.0)  # hold: sealed for a while, as after a real restart
            await bao_raft.aunseal()
            await eventually(lambda: slot.stale_seconds < INTERVAL + 0.1, 5, "confirmed again")
            await asyncio.sleep(0.5)  # pace: load goes on after the recovery
        assert_steady(load)


async def test_with_vault_down_at_start_readyz_is_503_until_it_returns_then_200(
    exchange: RunningExchange, bao_raft: RaftBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path = unique("gate/bot")
    api_key, secret = exchange.new_key()
    bao_raft.put(path, {"key": api_key, "secret": secret})
    leaks.add(secret=secret, root=bao_raft.root_token)
    await bao_raft.astop()
    async with sidecar_on_vault(exchange, bao_raft, path, tmp_path) as sidecar:
        # Listeners are open at once; the key answers 503 and readiness says why.
        url = sidecar.url("bot") + PATH
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 503
        await eventually(lambda: sidecar.sidecar.keys["bot"].source.attempted.is_set(), 10, "try")
        status, body = await readyz(sidecar)
        assert status == 503 and body["missing"] == ["bot"]
        assert any("cannot reach Vault" in p for p in body["problems"])

        await bao_raft.astart()
        await bao_raft.aunseal()

        async def ready() -> bool:
            return (await readyz(sidecar))[0] == 200

        await eventually(ready, 5, "ready within 5 s of Vault's return", step=0.1)
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
        leaks.add(token=await session_of(sidecar).token())
