"""Running a whole sidecar in-process for end-to-end tests.

`running_sidecar(config)` starts the sidecar exactly as `serve` does (admin listener plus
one listener per key, with the `server:` limits; the config's admin.listen, 127.0.0.1:0 from
`make_config`) and yields handles to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.config import Config, parse_config
from sidecar.runtime.admin_listener import open_admin
from sidecar.runtime.app import running
from sidecar.runtime.state import Sidecar
from tests.leaks import register_secret


@dataclass
class RunningSidecar:
    admin_url: str
    sidecar: Sidecar

    def url(self, key: str) -> str:
        """Base URL of a key's listener (http://127.0.0.1:PORT)."""
        return self.sidecar.keys[key].url


def make_config(upstream_url: str, keys: list[dict[str, Any]], **sections: Any) -> Config:
    """A config with test defaults: every key on a free loopback port, audit on, text logs."""
    data: dict[str, Any] = {
        "upstream": {"base_url": upstream_url, "timeout_s": 10},
        "admin": {"listen": "127.0.0.1:0"},
        "clock": {"sync": False},
        "keys": [{"listen": "127.0.0.1:0", **k} for k in keys],
    }
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value}
    return parse_config(data, environ={})


def env_key(
    name: str, policy: Any, **extra: Any
) -> tuple[dict[str, Any], dict[str, str], str, str]:
    """A key entry with an env source and a fresh random pair: (entry, environ, api_key, secret)."""
    api_key = f"key-{name}-{secrets.token_hex(4)}"
    secret = secrets.token_hex(32)
    register_secret(secret)
    var = name.upper().replace("-", "_")
    entry = {
        "name": name,
        "source": {"env": {"key_var": f"{var}_KEY", "secret_var": f"{var}_SECRET"}},
        "policy": policy,
        **extra,
    }
    return entry, {f"{var}_KEY": api_key, f"{var}_SECRET": secret}, api_key, secret


@contextlib.asynccontextmanager
async def running_sidecar(
    config: Config, environ: Mapping[str, str] | None = None
) -> AsyncIterator[RunningSidecar]:
    async with running(config, environ=environ or {}) as sidecar:
        admin = await open_admin(sidecar, config)
        # Env and file sources answer at once; let their first poll land so tests see a
        # settled state. Vault sources may legitimately take longer: tests wait on those.
        for handle in sidecar.keys.values():
            if handle.config.source.kind in ("env", "file"):
                await asyncio.wait_for(handle.source.attempted.wait(), timeout=10)
        try:
            yield RunningSidecar(admin.url, sidecar)
        finally:
            await admin.close()
