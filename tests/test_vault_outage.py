"""Vault outages against a raft-storage server: stopped, restarted sealed, unsealed, and down at
start. The held pair keeps serving, staleness grows (and max_stale_s turns it into 503), and
everything recovers by itself once Vault is back."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from sidecar.errors import KeyUnavailable
from sidecar.vault.auth.approle import AppRoleAuth
from sidecar.vault.auth.token import TokenAuth
from tests.fixtures_bao import LeakCheck, RaftBao, running_kv, unique
from tests.sync import eventually

INTERVAL = 0.5
RECOVERY_S = 5.0  # from unseal to confirmed: the session's login backoff is capped at 3 s


def pair() -> dict[str, str]:
    return {"key": "key-" + secrets.token_hex(8), "secret": secrets.token_hex(32)}


def _auth(bao: RaftBao, method: str, path: str, tmp: Path) -> TokenAuth | AppRoleAuth:
    token_file = tmp / "token"
    if method == "token":
        token_file.write_text(bao.root_token)
        return TokenAuth(token_file=token_file)
    policy = bao.policy(unique("gate-read"), path)
    # A 2 s token expires during the outage: recovery needs a fresh login, not just a retry.
    mount, role_id, secret_id = bao.approle([policy], token_ttl="2s", token_max_ttl="30s")
    secret_id_file = tmp / "secret-id"
    secret_id_file.write_text(secret_id)
    return AppRoleAuth(
        method="approle", mount=mount, role_id=role_id, secret_id_file=secret_id_file
    )


@pytest.mark.parametrize("method", ["token", "approle"])
async def test_a_stopped_then_sealed_vault_keeps_the_held_pair_serving_until_it_is_back(
    bao_raft: RaftBao, leaks: LeakCheck, tmp_path: Path, method: str
) -> None:
    path, first, second = unique("gate/bot"), pair(), pair()
    bao_raft.put(path, first)
    auth = _auth(bao_raft, method, path, tmp_path)
    leaks.add(secret=first["secret"], second=second["secret"], root=bao_raft.root_token)
    async with running_kv(bao_raft, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        bounded = kv.add(path, "bounded", max_stale_s=2.0)
        await eventually(lambda: kv.slot.ready and bounded.slot.ready, 10, "slots filled")
        leaks.add(token=await kv.session.token())

        await bao_raft.astop()
        stopped = time.monotonic()
        # Requests keep being signed with the held pair while Vault is gone...
        while time.monotonic() - stopped < 3.0:
            assert kv.slot.current().api_key == first["key"]
            await asyncio.sleep(0.1)  # pace: sampled every 0.1 s through a 3 s outage
        assert kv.slot.stale_seconds >= 2.5
        assert "cannot reach Vault" in (kv.slot.last_error or "")
        assert kv.session.errors.get("unavailable", 0) >= 1
        # ...except where max_stale_s says a pair that old must not sign any more.
        with pytest.raises(KeyUnavailable, match="max_stale_s"):
            bounded.slot.current()

        await bao_raft.astart()  # back, but sealed
        await eventually(
            lambda: "sealed" in (kv.slot.last_error or ""), 2 * INTERVAL + 3, "sealed seen"
        )
        assert kv.slot.current().api_key == first["key"]

        await bao_raft.aunseal()
        unsealed = time.monotonic()
        await eventually(lambda: kv.slot.stale_seconds < INTERVAL + 0.1, RECOVERY_S, "confirmed")
        await eventually(lambda: bounded.slot.ready and bounded.slot.stale_seconds < 1, 2, "ok")
        assert bounded.slot.current().api_key == first["key"]
        assert time.monotonic() - unsealed <= RECOVERY_S
        if method == "approle":
            assert kv.session.logins >= 2, "the expired token was replaced by a fresh login"
            leaks.add(token2=await kv.session.token())

        # And rotation works again.
        version = await bao_raft.aput(path, second)
        await eventually(lambda: kv.slot.version == str(version), INTERVAL + 1, "rotation")


async def test_with_vault_down_at_start_the_key_fills_within_seconds_of_its_return(
    bao_raft: RaftBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path, first = unique("gate/bot"), pair()
    bao_raft.put(path, first)
    auth = _auth(bao_raft, "approle", path, tmp_path)
    await bao_raft.astop()
    leaks.add(secret=first["secret"], root=bao_raft.root_token)
    # A long interval on purpose: the key must fill because the session logged in, not because
    # the source's next scheduled poll happened to come round.
    async with running_kv(bao_raft, path, auth=auth, environ={}, interval_s=30) as kv:
        await eventually(lambda: kv.source.attempted.is_set(), 10, "first poll")
        await asyncio.sleep(2.0)  # hold: Vault stays down 2 s more; the key stays unfilled
        assert not kv.slot.ready and "cannot reach Vault" in kv.slot.reason
        with pytest.raises(KeyUnavailable):
            kv.slot.current()

        await bao_raft.astart()
        await asyncio.sleep(1.0)  # hold: sealed for a while, as a real restart would be
        assert not kv.slot.ready
        await bao_raft.aunseal()
        took = await eventually(lambda: kv.slot.ready, RECOVERY_S, "slot filled")
        assert took <= RECOVERY_S
        assert kv.slot.current().api_key == first["key"]
        leaks.add(token=await kv.session.token())
