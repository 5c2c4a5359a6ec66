"""Transit signing and the transit source against a real OpenBao server (`bao server -dev`).

The import goes through the real CLI (a subprocess, the secret on stdin); signatures must equal
local HMAC-SHA512 for Gate's official vectors and for generated requests; the source must follow
rotations (a new imported version), revocations (key deleted, policy removed) and API-key changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import KeySlot
from sidecar.credentials.sources.vault_transit import VaultTransit, VaultTransitSource
from sidecar.errors import KeyUnavailable
from sidecar.gate.signing import HmacSigner, string_to_sign
from sidecar.vault.session import VaultSession
from sidecar.vault.transit.importer import VECTOR_DOCUMENTED_SIGN
from sidecar.vault.transit.signer import TransitClient, TransitSigner
from tests.fixtures_bao import LeakCheck, unique
from tests.fixtures_transit import (
    Transit,
    all_encodings,
    delay_proxy,
    gate_secret,
    port_of,
    vault_config,
    vault_session,
)
from tests.sync import eventually
from tests.vectors import OFFICIAL_VECTORS

INTERVAL = 1.0


def run_cli(
    transit: Transit, key: str, secret: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``import-key`` as an operator runs it: the secret on stdin, the token in the environment."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "VAULT_ADDR": transit.bao.addr,
        "VAULT_TOKEN": transit.bao.root_token,
    }
    argv = [sys.executable, "-m", "sidecar.vault.transit.cli", "import-key", "--transit-key", key]
    argv += ["--mount", transit.mount, *extra]
    assert not any(secret in a for a in argv)
    return subprocess.run(
        argv, input=secret + "\n", capture_output=True, text=True, env=env, timeout=60
    )


@dataclass
class Signing:
    session: VaultSession
    client: TransitClient

    def signer(self, transit: Transit, key: str, version: int = 1) -> TransitSigner:
        return TransitSigner(self.client, transit.mount, key, version)


@contextlib.asynccontextmanager
async def signing(
    transit: Transit, tmp: Path, policies: list[str] | None = None, address: str | None = None
) -> AsyncIterator[Signing]:
    cfg = vault_config(transit.bao, transit.token_file(tmp, policies))
    if address is not None:
        cfg = cfg.model_copy(update={"address": address})
    async with vault_session(cfg) as session:
        client = TransitClient.acquire(session)
        try:
            yield Signing(session, client)
        finally:
            await client.release()


# -- import through the CLI -----------------------------------------------------------------------


def test_the_cli_imports_gates_example_secret_and_prints_the_documented_signature(
    transit: Transit,
) -> None:
    done = run_cli(transit, "gate-example", "secret", "--compare-locally")
    assert done.returncode == 0, done.stderr
    assert f"SIGN = {VECTOR_DOCUMENTED_SIGN}" in done.stdout
    assert "MATCHES" in done.stdout and "version 1" in done.stdout
    info = transit.bao.admin().read(f"{transit.mount}/keys/gate-example")["data"]
    assert (info["type"], info["exportable"], info["allow_plaintext_backup"]) == (
        "hmac",
        False,
        False,
    )
    assert info["imported_key"] and not info["imported_key_allow_rotation"]


def test_the_cli_imports_a_real_secret_rotates_it_and_never_prints_it(transit: Transit) -> None:
    first, second = gate_secret(), gate_secret()
    done = run_cli(transit, "gate-bot", first)
    assert done.returncode == 0, done.stderr
    again = run_cli(transit, "gate-bot", second)
    assert again.returncode == 1 and "--rotate" in again.stderr
    rotated = run_cli(transit, "gate-bot", second, "--rotate", "--compare-locally")
    assert rotated.returncode == 0, rotated.stderr
    assert "version 2" in rotated.stdout and "MATCHES" in rotated.stdout
    missing = run_cli(transit, "no-such-key", second, "--rotate")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    outputs = [p.stdout + p.stderr for p in (done, again, rotated, missing)]
    for secret in (first, second):
        assert not [
            name for name, v in all_encodings(secret).items() if any(v in o for o in outputs)
        ]


def test_the_cli_says_when_vault_refuses_the_operators_token(transit: Transit) -> None:
    env_token = transit.bao.child_token(["default"])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar.vault.transit.cli",
            "import-key",
            "--transit-key",
            "k",
            "--mount",
            transit.mount,
        ],
        input="x" * 64,
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ.get("PATH", ""),
            "VAULT_ADDR": transit.bao.addr,
            "VAULT_TOKEN": env_token,
        },
        timeout=60,
    )
    assert done.returncode == 1 and "permission denied" in done.stderr
    assert env_token not in done.stderr + done.stdout


# -- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "query", "body", "sign"), OFFICIAL_VECTORS)
async def test_transit_signs_gates_official_vectors_exactly(
    transit: Transit, tmp_path: Path, method: str, path: str, query: str, body: bytes, sign: str
) -> None:
    transit.import_secret("example", "secret")
    async with signing(transit, tmp_path) as s:
        message = string_to_sign(method, path, query, body, "1541993715")
        assert await s.signer(transit, "example").sign(message) == sign


def generated_requests(count: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]
    paths = ["/api/v4/spot/orders", "/api/v4/futures/usdt/orders", "/api/v4/wallet/total_balance"]
    messages = []
    for _ in range(count):
        query = "&".join(
            f"{rnd.choice(['currency_pair', 'status', 'text', 'limit'])}="
            f"{rnd.choice(['BTC_USDT', 'open', 't-a b', 'BTC%2CETH', '100', 'é'])}"
            for _ in range(rnd.randint(0, 3))
        )
        body = rnd.randbytes(rnd.randint(0, 300)) if rnd.random() < 0.5 else b""
        messages.append(
            string_to_sign(
                rnd.choice(methods),
                rnd.choice(paths),
                query,
                body,
                str(1_700_000_000 + rnd.randint(0, 10**6)),
            )
        )
    return messages


async def test_transit_equals_local_hmac_for_generated_requests(
    transit: Transit, tmp_path: Path
) -> None:
    secret = gate_secret()
    transit.import_secret("gate-bot", secret)
    local = HmacSigner(secret)
    async with signing(transit, tmp_path, [transit.policy("gate-bot")]) as s:
        signer = s.signer(transit, "gate-bot")
        messages = generated_requests(60, seed=7)
        remote = await asyncio.gather(*(signer.sign(m) for m in messages))
        assert remote == [await local.sign(m) for m in messages]


async def test_a_pinned_version_keeps_signing_with_its_own_secret_after_a_rotation(
    transit: Transit, tmp_path: Path
) -> None:
    old, new = gate_secret(), gate_secret()
    transit.import_secret("gate-bot", old)
    transit.import_secret("gate-bot", new, rotate=True)
    async with signing(transit, tmp_path) as s:
        message = generated_requests(1, seed=1)[0]
        assert await s.signer(transit, "gate-bot", 1).sign(message) == await HmacSigner(old).sign(
            message
        )
        assert await s.signer(transit, "gate-bot", 2).sign(message) == await HmacSigner(new).sign(
            message
        )
        with pytest.raises(KeyUnavailable, match="key version does not exist"):
            await s.signer(transit, "gate-bot", 3).sign(message)


async def test_concurrent_signs_do_not_queue_behind_one_connection(
    transit: Transit, tmp_path: Path
) -> None:
    """With 50 ms added to every Vault request, 20 signs at once must take a few round trips,
    not twenty: the pool opens parallel keep-alive connections, and keeps them."""
    transit.import_secret("gate-bot", gate_secret())
    async with delay_proxy(port_of(transit.bao.addr), 0.05) as proxy:
        async with signing(transit, tmp_path, address=proxy.url) as s:
            signer = s.signer(transit, "gate-bot")
            message = b"GET\n/api/v4/spot/accounts\n\n\n1"
            singles = []
            for _ in range(5):
                start = time.monotonic()
                await signer.sign(message)
                singles.append(time.monotonic() - start)
            one = statistics.median(singles)
            assert one >= 0.05
            # The first batch opens the connections (timed with the next: on a busy CI machine,
            # twenty connects at once took 6.6 round trips where the signs themselves take ~1).
            await asyncio.gather(*(signer.sign(message) for _ in range(20)))
            assert proxy.connections >= 10
            # Keep-alive: the next batch reuses those connections instead of opening new ones,
            # and in parallel: one connection would queue them, twenty round trips or more.
            before = proxy.connections
            start = time.monotonic()
            await asyncio.gather(*(signer.sign(message) for _ in range(20)))
            twenty = time.monotonic() - start
            assert twenty < 5 * one, f"20 concurrent signs took {twenty:.3f}s, one {one:.3f}s"
            assert proxy.connections - before <= 2


async def test_a_replaced_token_is_picked_up_after_a_403_without_failing_a_sign(
    transit: Transit, tmp_path: Path
) -> None:
    transit.import_secret("gate-bot", gate_secret())
    policy = transit.policy("gate-bot")
    token_file = transit.token_file(tmp_path, [policy])
    async with vault_session(vault_config(transit.bao, token_file)) as session:
        client = TransitClient.acquire(session)
        signer = TransitSigner(client, transit.mount, "gate-bot", 1)
        await signer.sign(b"one")
        old = token_file.read_text()
        transit.bao.admin().auth.token.revoke(old)
        token_file.write_text(transit.bao.child_token([policy]))
        await signer.sign(b"two")  # 403 -> fresh login (re-reads the file) -> retried
        assert client.counts.get("ok") == 2
        await client.release()


# -- the source ---------------------------------------------------------------------------------


@dataclass
class RunningTransit:
    session: VaultSession
    slot: KeySlot
    source: VaultTransit
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_source(
    transit: Transit, tmp: Path, key: str, policies: list[str] | None = None, **spec: str
) -> AsyncIterator[RunningTransit]:
    cfg = vault_config(transit.bao, transit.token_file(tmp, policies), INTERVAL)
    spec_model = VaultTransitSource(key=key, mount=transit.mount, **spec)
    async with vault_session(cfg) as session:
        slot = KeySlot("bot")
        source = VaultTransit(slot, Rotation(None), spec_model, session, INTERVAL)
        task = asyncio.create_task(source.run())
        try:
            yield RunningTransit(session, slot, source, task)
        finally:
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            await source.close()


async def test_the_source_installs_the_latest_version_and_follows_a_rotation(
    transit: Transit, tmp_path: Path, leaks: LeakCheck
) -> None:
    first, second = gate_secret(), gate_secret()
    leaks.add(first=first, second=second, root=transit.bao.root_token)
    transit.import_secret("gate-bot", first)
    policy = transit.policy("gate-bot")
    async with running_source(transit, tmp_path, "gate-bot", [policy], api_key="pub-1") as run:
        await eventually(lambda: run.slot.ready, 10, "loaded")
        creds = run.slot.current()
        assert (creds.api_key, creds.version) == ("pub-1", "transit:v1")
        message = b"POST\n/api/v4/spot/orders\n\nabc\n1"
        assert await creds.signer.sign(message) == await HmacSigner(first).sign(message)
        await transit.aimport("gate-bot", second, rotate=True)
        took = await eventually(lambda: run.slot.version == "transit:v2", INTERVAL + 1, "v2")
        assert took <= INTERVAL + 1
        assert await run.slot.current().signer.sign(message) == await HmacSigner(second).sign(
            message
        )
        # A request that took the old pair before the swap still signs with the old secret.
        assert await creds.signer.sign(message) == await HmacSigner(first).sign(message)


async def test_the_api_key_can_live_in_kv_and_rotate_with_the_transit_key(
    transit: Transit, tmp_path: Path
) -> None:
    path = unique("gate/transit-bot")
    transit.bao.put(path, {"key": "pub-1"})
    transit.import_secret("gate-bot", gate_secret())
    policy = transit.policy("gate-bot", api_key_path=path)
    async with running_source(transit, tmp_path, "gate-bot", [policy], api_key_path=path) as run:
        await eventually(lambda: run.slot.ready, 10, "loaded")
        assert run.slot.current().api_key == "pub-1"
        await transit.bao.aput(path, {"key": "pub-2"})
        await transit.aimport("gate-bot", gate_secret(), rotate=True)
        await eventually(
            lambda: (
                run.slot.ready
                and (run.slot.current().api_key, run.slot.version) == ("pub-2", "transit:v2")
            ),
            INTERVAL + 1,
            "both rotated",
        )


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("key deleted", "not found"),
        ("policy deleted", "denied access after a fresh login"),
        ("api key deleted", "API key secret"),
    ],
)
async def test_a_revoked_transit_key_stops_signing_at_once(
    transit: Transit, tmp_path: Path, how: str, reason: str
) -> None:
    path = unique("gate/transit-bot")
    transit.bao.put(path, {"key": "pub-1"})
    transit.import_secret("gate-bot", gate_secret())
    policy = transit.policy("gate-bot", api_key_path=path)
    async with running_source(transit, tmp_path, "gate-bot", [policy], api_key_path=path) as run:
        await eventually(lambda: run.slot.ready, 10, "loaded")
        signer = run.slot.current().signer
        await signer.sign(b"before")
        if how == "key deleted":
            await asyncio.to_thread(transit.delete_key, "gate-bot")
        elif how == "policy deleted":
            await asyncio.to_thread(transit.delete_policy, policy)
        else:
            await asyncio.to_thread(
                transit.bao.admin().secrets.kv.v2.delete_metadata_and_all_versions, path
            )
        if how != "api key deleted":
            with pytest.raises(KeyUnavailable, match="refused to sign"):
                await signer.sign(b"after")
            # The refusal asked for a poll at once: well within the refresh interval.
            await eventually(lambda: not run.slot.ready, 0.9 * INTERVAL, "revoked")
        else:
            await eventually(lambda: not run.slot.ready, INTERVAL + 1, "revoked")
        with pytest.raises(KeyUnavailable):
            run.slot.current()
        assert reason in run.slot.reason


async def test_a_key_that_is_not_an_hmac_key_is_never_used(
    transit: Transit, tmp_path: Path
) -> None:
    transit.bao.admin().write_data(f"{transit.mount}/keys/aes", data={"type": "aes256-gcm96"})
    async with running_source(transit, tmp_path, "aes", api_key="pub") as run:
        await eventually(lambda: "not an hmac key" in run.slot.reason, 10, "refused")
        assert not run.slot.ready


async def test_the_secret_never_reaches_logs_errors_or_reprs(
    transit: Transit, tmp_path: Path, leaks: LeakCheck
) -> None:
    secret = gate_secret()
    leaks.add(**all_encodings(secret), root=transit.bao.root_token)
    transit.import_secret("gate-bot", secret)
    texts: list[str] = []
    async with running_source(transit, tmp_path, "gate-bot", api_key="pub") as run:
        await eventually(lambda: run.slot.ready, 10, "loaded")
        creds = run.slot.current()
        texts += [repr(creds), repr(creds.signer), repr(run.source.client), str(run.slot.status())]
        await asyncio.to_thread(transit.delete_key, "gate-bot")
        with pytest.raises(KeyUnavailable) as info:
            await creds.signer.sign(b"x")
        texts.append(str(info.value))
        await eventually(lambda: not run.slot.ready, 5, "revoked")
        texts.append(str(run.slot.status()))
    hits = [n for n, v in all_encodings(secret).items() if any(v in t for t in texts)]
    assert not hits
    assert secrets.compare_digest(secret, secret)  # the value was real and in scope
