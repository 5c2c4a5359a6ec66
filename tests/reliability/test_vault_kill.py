"""Vault killed (SIGKILL) with a key's refresh in flight, while bots keep sending requests.

A real OpenBao on raft storage sits behind a small TCP relay. Once bots are running, the relay
holds back Vault's answer to the next read of the key's secret; with that read in flight the
test kills Vault outright (no shutdown), so the sidecar's refresh fails mid-request exactly as
it would when the node dies. Vault stays down for a while, comes back sealed (raft kept the
data), and is unsealed. Expected, for every bot request (none lost, none hung):

- the key without ``max_stale_s``: 200 throughout, signed with the held pair;
- the key with ``max_stale_s``: 200 until its pair is older than that, then
  ``503 SIDECAR_KEY_UNAVAILABLE`` (never forwarded), then 200 again within seconds of the unseal.

``make soak`` runs it with a longer outage and more bots (tests/reliability/harness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.credentials.slot import KeySlot
from tests.fixtures_bao import RaftBao, unique
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, make_config, running_sidecar
from tests.reliability.harness import record_figure, size
from tests.sync import eventually

PATH = "/api/v4/spot/accounts"
INTERVAL_S = 0.5  # vault.refresh_interval_s
MAX_STALE_S = 2.0  # the bounded key's max_stale_s
OUTAGE_S = float(size(4, 20))  # killed to restarted
SEALED_S = 1.0  # restarted to unsealed
BOTS = size(4, 16)  # per key
REQUESTS_PER_BOT = size(4_000, 40_000)  # a bound; the phases end the test well before it
RECOVERY_S = 5.0  # unseal to serving again (the session's login backoff is capped at 3 s)


class Relay:
    """A TCP relay to Vault that, once armed, holds back the answer to the next request whose
    head contains ``watch``: that request stays in flight until the relay's Vault side closes
    (Vault was killed), and then the sidecar's side is reset without an answer."""

    def __init__(self, vault_port: int, watch: bytes) -> None:
        self.vault_port = vault_port
        self.watch = watch
        self.armed = False
        self.caught = asyncio.Event()
        self.cut_in_flight = 0  # held requests whose connection ended without an answer
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            vault_r, vault_w = await asyncio.open_connection("127.0.0.1", self.vault_port)
        except OSError:  # Vault is down: the sidecar sees its connection fail
            client_w.transport.abort()
            self._tasks.discard(task)
            return
        held = asyncio.Event()

        async def to_vault() -> None:
            while data := await client_r.read(65536):
                if self.armed and self.watch in data:
                    self.armed = False
                    held.set()
                    self.caught.set()
                vault_w.write(data)
                await vault_w.drain()

        async def to_client() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await vault_r.read(65536):
                    if not held.is_set():
                        client_w.write(data)
                        await client_w.drain()
            if held.is_set():
                self.cut_in_flight += 1

        pumps = [asyncio.create_task(to_vault()), asyncio.create_task(to_client())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            vault_w.transport.abort()
            client_w.transport.abort()
            self._tasks.discard(task)


@dataclass
class Answer:
    sent: float  # monotonic
    latency_s: float
    status: int  # 0: no answer (a client-side error or timeout)
    label: str | None


@dataclass
class Bots:
    """``BOTS`` bots per key, each sending GETs one after another until told to stop."""

    urls: dict[str, str]
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _bot(self, key: str) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        out = self.answers.setdefault(key, [])
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(REQUESTS_PER_BOT):
                if self.stop.is_set():
                    return
                sent = time.monotonic()
                status, label = 0, None
                try:
                    async with http.get(self.urls[key]) as resp:
                        status = resp.status
                        if status != 200:
                            label = (await resp.json())["label"]
                        else:
                            await resp.read()
                except (aiohttp.ClientError, TimeoutError):
                    pass
                out.append(Answer(sent, time.monotonic() - sent, status, label))
                await asyncio.sleep(0.01)  # pace: each bot's request rate

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Bots]:
        tasks = [asyncio.create_task(self._bot(k)) for k in self.urls for _ in range(BOTS)]
        try:
            yield self
        finally:
            self.stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


@contextlib.asynccontextmanager
async def sidecar_behind(
    relay_url: str, bao: RaftBao, exchange: RunningExchange, tmp: Path, paths: dict[str, str]
) -> AsyncIterator[RunningSidecar]:
    token_file = tmp / "vault-token"
    token_file.write_text(bao.root_token)
    vault = {
        "address": relay_url,
        "refresh_interval_s": INTERVAL_S,
        "timeout_s": 2,
        "auth": {"method": "token", "token_file": str(token_file)},
    }
    entries: list[dict[str, Any]] = [
        {"name": "steady", "source": {"vault": {"path": paths["steady"]}}, "policy": "read-only"},
        {
            "name": "bounded",
            "source": {"vault": {"path": paths["bounded"]}},
            "policy": "read-only",
            "max_stale_s": MAX_STALE_S,
        },
    ]
    async with running_sidecar(make_config(exchange.url, entries, vault=vault)) as sidecar:
        yield sidecar


def _median_ms(answers: list[Answer]) -> float:
    return round(1000 * statistics.median(a.latency_s for a in answers), 2)


def _worst_ms(answers: list[Answer]) -> float:
    return round(1000 * max(a.latency_s for a in answers), 1)


def _slot(sidecar: RunningSidecar, key: str) -> KeySlot:
    return sidecar.sidecar.keys[key].runtime.slot


async def test_vault_killed_with_a_refresh_in_flight_loses_no_request_and_recovers(
    exchange: RunningExchange, bao_raft: RaftBao, tmp_path: Path
) -> None:
    paths = {"steady": unique("gate/steady"), "bounded": unique("gate/bounded")}
    pairs = {}
    for key, path in paths.items():
        pairs[key] = exchange.new_key()
        bao_raft.put(path, {"key": pairs[key][0], "secret": pairs[key][1]})
    vault_port = int(bao_raft.addr.rsplit(":", 1)[1])
    relay = Relay(vault_port, paths["steady"].encode())
    relay_url = await relay.start()
    try:
        async with sidecar_behind(relay_url, bao_raft, exchange, tmp_path, paths) as sidecar:
            steady, bounded = _slot(sidecar, "steady"), _slot(sidecar, "bounded")
            await eventually(lambda: steady.ready and bounded.ready, 10, "both keys filled")
            urls = {k: sidecar.url(k) + PATH for k in paths}
            async with Bots(urls).running() as bots:
                await asyncio.sleep(0.5)  # pace: the bots run a while before the fault
                relay.armed = True
                await asyncio.wait_for(relay.caught.wait(), timeout=3 * INTERVAL_S + 2)
                await bao_raft.akill()  # with the steady key's refresh in flight
                killed = time.monotonic()
                await asyncio.sleep(OUTAGE_S)  # hold: the outage lasts OUTAGE_S
                assert relay.cut_in_flight == 1  # the refresh died with Vault, unanswered
                assert "cannot reach Vault" in (steady.last_error or ""), steady.last_error
                assert steady.stale_seconds >= OUTAGE_S - INTERVAL_S
                await bao_raft.astart()  # back, sealed; raft kept the data and the token
                await asyncio.sleep(SEALED_S)  # hold: sealed for SEALED_S
                unsealed = time.monotonic()  # from here on Vault may answer again
                await bao_raft.aunseal()
                await eventually(
                    lambda: bounded.ready and bounded.stale_seconds < INTERVAL_S + 0.2,
                    RECOVERY_S,
                    "the bounded key confirmed again",
                )
                recovered = time.monotonic()
                await asyncio.sleep(1.0)  # pace: bots keep going after the recovery
    finally:
        await relay.close()

    answers = bots.answers
    sent = {k: len(v) for k, v in answers.items()}
    assert all(n >= 20 for n in sent.values()), sent
    # Nothing lost, nothing hung: every request was answered, quickly (signing never waits on
    # Vault), with 200 or, for the bounded key only, the 503 max_stale_s calls for.
    for key, got in answers.items():
        lost = [a for a in got if a.status == 0]
        assert not lost, f"{key}: {len(lost)} requests without an answer"
        assert max(a.latency_s for a in got) < 1.0, key
    assert {(a.status, a.label) for a in answers["steady"]} == {(200, None)}
    assert {(a.status, a.label) for a in answers["bounded"]} == {
        (200, None),
        (503, "SIDECAR_KEY_UNAVAILABLE"),
    }
    # The bounded key: 200 until its pair is older than max_stale_s, 503 from then until the
    # unseal, 200 again within seconds of it. Its last confirmation was at most one interval
    # (plus the failed read) before the kill, so the pair turns too old between
    # max_stale_s - interval and max_stale_s after it. (Windows by the time each request was
    # sent, with a margin: concurrent requests near a switch may be handled in either order.)
    stale_from, stale_by = killed + MAX_STALE_S - INTERVAL_S - 0.3, killed + MAX_STALE_S + 0.3
    for a in answers["bounded"]:
        if a.sent < stale_from or a.sent > recovered + 0.3:
            assert a.status == 200, (a.sent - killed, a)
        elif stale_by < a.sent < unsealed:
            assert a.status == 503, (a.sent - killed, a)
    refused = [a.sent for a in answers["bounded"] if a.status == 503]
    first_503 = min(refused) - killed
    # Every 200 was forwarded and verified with the held pair; no 503 reached the exchange.
    for key, (api_key, _) in pairs.items():
        forwarded = [r for r in exchange.state.verified(api_key) if r.raw_path == PATH]
        assert len(forwarded) == sum(a.status == 200 for a in answers[key]), key
    assert not [r for r in exchange.state.requests if r.verdict != "ok" and r.raw_path == PATH]

    during = [a for got in answers.values() for a in got if killed <= a.sent <= unsealed]
    record_figure("vault_kill_outage_s", round(unsealed - killed, 1))
    record_figure("vault_kill_bots", 2 * BOTS)
    record_figure("vault_kill_requests", sum(sent.values()))
    record_figure("vault_kill_requests_during_outage", len(during))
    record_figure("vault_kill_median_latency_ms_during", _median_ms(during))
    record_figure("vault_kill_worst_latency_ms_during", _worst_ms(during))
    record_figure("vault_kill_bounded_503_after_kill_s", round(first_503, 2))
    record_figure("vault_kill_recovered_after_unseal_s", round(recovered - unsealed, 2))
