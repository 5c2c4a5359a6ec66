"""Fixtures for the Vault transit tests: a transit mount on a real OpenBao, imports, policies.

- ``transit``: a fresh transit mount (unique path) on the session's ``bao_dev``, with helpers to
  import a secret (in-process, through :mod:`sidecar.vault.transit.importer`), delete a key and
  write the sidecar's policy (the HCL docs/transit.md gives operators).
- :class:`DelayProxy`: a loopback TCP proxy adding latency to each request and counting
  connections, to show that concurrent signs do not queue behind one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sidecar.vault.auth.token import TokenAuth
from sidecar.vault.session import VaultSession
from sidecar.vault.settings import VaultConfig
from sidecar.vault.transit.importer import ImportResult, import_key
from tests.fixtures_bao import Bao, DevBao, unique

TRANSIT_POLICY_HCL = """
path "{mount}/hmac/{key}/sha2-512" {{ capabilities = ["update"] }}
path "{mount}/keys/{key}" {{ capabilities = ["read"] }}
"""
API_KEY_POLICY_HCL = """
path "secret/data/{path}" {{ capabilities = ["read"] }}
path "secret/metadata/{path}" {{ capabilities = ["read"] }}
"""


def gate_secret() -> str:
    """A secret shaped like Gate's: 64 lowercase hex characters."""
    return secrets.token_hex(32)


@dataclass
class Transit:
    bao: Bao
    mount: str

    def import_secret(self, key: str, secret: str, *, rotate: bool = False) -> ImportResult:
        return import_key(self.bao.admin(), self.mount, key, secret, rotate=rotate)

    async def aimport(self, key: str, secret: str, *, rotate: bool = False) -> ImportResult:
        return await asyncio.to_thread(self.import_secret, key, secret, rotate=rotate)

    def delete_key(self, key: str) -> None:
        admin = self.bao.admin()
        admin.write_data(f"{self.mount}/keys/{key}/config", data={"deletion_allowed": True})
        admin.delete(f"{self.mount}/keys/{key}")

    def policy(self, key: str, api_key_path: str | None = None) -> str:
        """The sidecar's policy for one transit key (and its API-key secret); its name."""
        name = unique("transit-policy")
        hcl = TRANSIT_POLICY_HCL.format(mount=self.mount, key=key)
        if api_key_path is not None:
            hcl += API_KEY_POLICY_HCL.format(path=api_key_path)
        self.bao.admin().sys.create_or_update_policy(name=name, policy=hcl)
        return name

    def delete_policy(self, name: str) -> None:
        self.bao.admin().sys.delete_policy(name)

    def token_file(self, tmp: Path, policies: list[str] | None = None) -> Path:
        """A token file for the sidecar: a child token with ``policies``, or the root token."""
        token = self.bao.child_token(policies) if policies is not None else self.bao.root_token
        path = tmp / f"vault-token-{secrets.token_hex(3)}"
        path.write_text(token)
        return path


def enable_transit(bao: Bao) -> Transit:
    mount = unique("transit")
    bao.admin().sys.enable_secrets_engine("transit", path=mount)
    return Transit(bao, mount)


@pytest.fixture
def transit(bao_dev: DevBao) -> Transit:
    return enable_transit(bao_dev)


def vault_config(bao: Bao, token_file: Path, interval_s: float = 1.0) -> VaultConfig:
    return VaultConfig(
        address=bao.addr,
        refresh_interval_s=interval_s,
        timeout_s=5,
        auth=TokenAuth(token_file=token_file),
    )


@contextlib.asynccontextmanager
async def vault_session(cfg: VaultConfig) -> AsyncIterator[VaultSession]:
    session = VaultSession(cfg, environ={})
    await session.start()
    try:
        yield session
    finally:
        await session.close()


# -- a proxy that adds latency ------------------------------------------------------------------


@dataclass
class DelayProxy:
    """Forwards loopback TCP to ``target_port``, delaying client->server data by ``delay_s``."""

    target_port: int
    delay_s: float
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)  # pace: the proxy's added latency
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        tasks = [
            asyncio.create_task(self._pipe(reader, up_writer, self.delay_s)),
            asyncio.create_task(self._pipe(up_reader, writer, 0.0)),
        ]
        for task in tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@contextlib.asynccontextmanager
async def delay_proxy(target_port: int, delay_s: float) -> AsyncIterator[DelayProxy]:
    proxy = DelayProxy(target_port, delay_s)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def all_encodings(secret: str) -> dict[str, str]:
    """The forms a leaked secret could take: as is, hex and base64 of its bytes."""
    import base64

    raw = secret.encode()
    return {
        "secret": secret,
        "secret_hex": raw.hex(),
        "secret_b64": base64.b64encode(raw).decode(),
    }


def scan(texts: list[str], values: dict[str, Any]) -> list[str]:
    """Names of ``values`` that occur in any of ``texts`` (never the values themselves)."""
    return [name for name, value in values.items() if any(str(value) in t for t in texts)]
