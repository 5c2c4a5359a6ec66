"""Helpers for the operations tests: an in-process sidecar on the verifying exchange, metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class OpsSetup:
    exchange: RunningExchange
    sidecar: RunningSidecar
    entries: list[dict[str, Any]]  # the key entries the config was made from
    environ: dict[str, str]
    api_keys: dict[str, str]

    def url(self, key: str, path: str) -> str:
        return self.sidecar.url(key) + path


def exchange_keys(
    exchange: RunningExchange, policies: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """Env-sourced key entries the exchange knows: (entries, environ, name -> api key)."""
    entries, environ, api_keys = [], {}, {}
    for name, policy in policies.items():
        entry, env, api_key, secret = env_key(name, policy)
        exchange.state.add_key(api_key, secret)
        entries.append(entry)
        environ.update(env)
        api_keys[name] = api_key
    return entries, environ, api_keys


@contextlib.asynccontextmanager
async def ops_setup(
    exchange: RunningExchange, policies: dict[str, Any], **sections: Any
) -> AsyncIterator[OpsSetup]:
    entries, environ, api_keys = exchange_keys(exchange, policies)
    config = make_config(exchange.url, entries, **sections)
    async with running_sidecar(config, environ) as sidecar:
        yield OpsSetup(exchange, sidecar, entries, environ, api_keys)


async def call(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request; the URL is sent as written (no dot-segment or percent normalisation)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, URL(url, encoded=True), data=body) as resp,
    ):
        return resp.status, await resp.read()


async def scrape(admin_url: str) -> Samples:
    """Every sample of ``GET /metrics``, keyed by (name, sorted labels)."""
    async with aiohttp.ClientSession() as http, http.get(admin_url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return parse_samples(await resp.text())


def parse_samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
