"""What the key manager tests share: a world of OpenBao, the test exchange, a sidecar and bots.

``World`` holds one account's worth of configuration with short durations (seconds), the main
key (a main-account key at the exchange, its pair in Vault), and helpers to run the manager in
this process or as a ``gate-sidecar keys run`` subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import hvac
import yaml

from sidecar.keymanager.loading import parse_manager_config
from sidecar.keymanager.manager import KeyManager
from sidecar.keymanager.settings import ManagerConfig
from sidecar.runtime.state import Sidecar
from tests.fixtures_bao import Bao, eventually, unique
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import make_config, running_sidecar
from tests.leaks import leaks_in, register_secret

SOURCE_IP = "203.0.113.7"  # what the exchange says every caller's address is
USER_ID = 10002345


@dataclass
class World:
    bao: Bao
    exchange: RunningExchange
    base: str  # a unique Vault path prefix for this test
    main_key: str
    store: dict[str, Any]
    account: dict[str, Any] = field(default_factory=dict)
    manager: dict[str, Any] = field(default_factory=dict)

    @property
    def environ(self) -> dict[str, str]:
        return {"VAULT_TOKEN": self.bao.root_token}

    def config_data(self) -> dict[str, Any]:
        account = {
            "name": "bot",
            "user_id": USER_ID,
            "store": self.store,
            "policy": "futures-only",
            "ip_whitelist": [SOURCE_IP],
            "rotate_every": "2s",
            "activation_timeout": "5s",
            "retire_idle": "400ms",
            "retire_max_wait": "8s",  # on a busy machine a sidecar may take seconds to switch
            "store_timeout": "8s",
            **self.account,
        }
        return {
            "gate": {"base_url": self.exchange.url, "timeout_s": 1, "connect_timeout_s": 1},
            "vault": {"address": self.bao.addr, "refresh_interval_s": 0.2, "timeout_s": 2},
            "admin": {"listen": "127.0.0.1:0"},
            "main_key": {"source": {"vault": {"path": f"{self.base}/main"}}},
            "state": {"path": f"{self.base}/manager"},
            "check_interval": "200ms",
            "lock_ttl": "3s",
            "gate_retry_for": "5s",
            "logging": {"format": "json", "level": "info"},
            "accounts": [account],
            **self.manager,
        }

    def config(self) -> ManagerConfig:
        return parse_manager_config(self.config_data(), environ={})

    def write_config(self, tmp: Path) -> Path:
        path = tmp / f"keys-{unique()}.yaml"
        path.write_text(yaml.safe_dump(self.config_data()))
        return path

    # -- what the exchange holds -----------------------------------------------------------------
    def sub_keys(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.exchange.state.sub_accounts.keys.items() if v.user_id == USER_ID
        }

    def minted(self) -> list[Any]:
        """Every key the exchange minted (deleted ones too)."""
        subs = self.exchange.state.sub_accounts
        return [*subs.keys.values(), *subs.deleted.values()]

    def register_minted(self) -> None:
        """Every secret the exchange ever minted goes to the leak scanner."""
        for key in self.minted():
            register_secret(key.secret)
        for account in self.exchange.state.accounts.values():
            register_secret(account.secret)

    def kv_texts(self) -> dict[str, str]:
        """Every version of every KV secret under this test's prefix, as text."""
        admin, out = self.bao.admin(), {}
        pending = [f"{self.base}/"]
        while pending:
            folder = pending.pop()
            listed = admin.secrets.kv.v2.list_secrets(path=folder, mount_point="secret")
            for name in listed["data"]["keys"]:
                path = folder + name
                if name.endswith("/"):
                    pending.append(path)
                    continue
                meta = admin.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
                for version in meta["data"]["versions"]:
                    with contextlib.suppress(hvac.exceptions.InvalidPath):
                        doc = admin.secrets.kv.v2.read_secret_version(
                            path=path,
                            version=int(version),
                            mount_point="secret",
                            raise_on_deleted_version=True,
                        )
                        out[f"{path}@{version}"] = repr(doc["data"]["data"])
        return out

    def stored_key(self) -> str | None:
        spec = self.store.get("vault") or {}
        path = spec.get("path") or (self.store.get("vault_transit") or {}).get("api_key_path")
        try:
            answer = self.bao.admin().secrets.kv.v2.read_secret_version(
                path=path, mount_point="secret", raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        value = answer["data"]["data"].get("key")
        return value if isinstance(value, str) else None

    def progress(self) -> dict[str, str]:
        answer = self.bao.admin().secrets.kv.v2.read_secret_version(
            path=f"{self.base}/manager/accounts/bot",
            mount_point="secret",
            raise_on_deleted_version=True,
        )
        return dict(answer["data"]["data"])

    def no_orphan(self) -> bool:
        """Every key at Gate is the stored one or the recorded previous one (being retired)."""
        known = {self.stored_key(), self.progress().get("previous") or None} - {None}
        return set(self.sub_keys()) <= known

    def converged(self) -> bool:
        """One key at Gate for the account, the one in the store; nothing in flight."""
        keys = self.sub_keys()
        stored = self.stored_key()
        return stored is not None and set(keys) == {stored}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[KeyManager]:
        manager = KeyManager(self.config(), environ=self.environ)
        async with manager.started():
            task = asyncio.create_task(manager.run())
            try:
                yield manager
            finally:
                await manager.stop(task, 10)


async def make_world(
    bao: Bao, exchange: RunningExchange, *, transit_mount: str | None = None
) -> World:
    base = unique("km")
    exchange.state.sub_accounts.activation_delay_s = 0.3
    exchange.state.sub_accounts.source_address = SOURCE_IP
    main_key, main_secret = exchange.new_key(uid=10001)
    await bao.aput(f"{base}/main", {"key": main_key, "secret": main_secret})
    if transit_mount is not None:
        store: dict[str, Any] = {
            "vault_transit": {
                "key": f"{base}-bot",
                "mount": transit_mount,
                "api_key_path": f"{base}/bot-key",
            }
        }
    else:
        store = {"vault": {"path": f"{base}/bot"}}
    return World(bao, exchange, base, main_key, store)


def sidecar_config(world: World) -> Any:
    return make_config(
        world.exchange.url,
        [{"name": "bot", "source": world.store, "policy": "futures-only"}],
        vault={"address": world.bao.addr, "refresh_interval_s": 0.2, "timeout_s": 2},
    )


@dataclass
class Bots:
    """Bots trading through the sidecar until stopped: bounded in count and time."""

    url: str
    sidecar: Sidecar
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def trade(self, max_requests: int = 5000, max_s: float = 60.0) -> None:
        end = time.monotonic() + max_s
        body = b'{"contract":"BTC_USDT","size":1,"price":"60000"}'
        async with aiohttp.ClientSession() as http:
            n = 0
            while not self.stop.is_set() and n < max_requests and time.monotonic() < end:
                n += 1
                if n % 2:
                    req = http.get(f"{self.url}/api/v4/futures/usdt/accounts")
                else:
                    req = http.post(
                        f"{self.url}/api/v4/futures/usdt/orders",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    )
                async with req as resp:
                    await resp.read()
                    if resp.status == 200 or resp.status == 201:
                        self.ok += 1
                    else:
                        self.failed.append(f"{resp.status} {(await resp.text())[:120]}")
                await asyncio.sleep(0.02)  # pace: the bot's request rate


@contextlib.asynccontextmanager
async def trading(world: World) -> AsyncIterator[Bots]:
    """A sidecar reading the account's store, ready, and bots trading through it."""
    async with running_sidecar(sidecar_config(world), environ=world.environ) as sidecar:
        slot = sidecar.sidecar.keys["bot"].source.slot
        await eventually(lambda: slot.ready, 15, "the sidecar loads the first key")
        bots = Bots(sidecar.url("bot"), sidecar.sidecar)
        task = asyncio.create_task(bots.trade())
        try:
            yield bots
        finally:
            bots.stop.set()
            await asyncio.wait_for(task, 10)


# -- the manager as a process -------------------------------------------------------------------


@dataclass
class ManagerProcess:
    proc: subprocess.Popen[bytes]
    out: Path

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def saw(self, event: str) -> bool:
        return f'"event": "{event}"' in self.text() or f'"event":"{event}"' in self.text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def start_process(world: World, config: Path, out: Path) -> ManagerProcess:
    env = {**os.environ, **world.environ, "PYTHONUNBUFFERED": "1"}
    with out.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "keys", "run", "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return ManagerProcess(proc, out)


def no_leak_in_output(*texts: str) -> list[str]:
    return leaks_in({f"output {i}": t for i, t in enumerate(texts)})
