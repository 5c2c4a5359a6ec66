"""Vault auth methods against a real `bao server -dev`: AppRole with short TTLs, Kubernetes auth
through a TokenReview endpoint on loopback, login failures, and credential files re-read."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from sidecar.vault.auth.approle import AppRoleAuth
from sidecar.vault.auth.kubernetes import KubernetesAuth
from tests.fixtures_bao import (
    DevBao,
    LeakCheck,
    TokenReview,
    eventually,
    running_kv,
    service_account_jwt,
    unique,
)

INTERVAL = 0.5


def pair() -> dict[str, str]:
    return {"key": "key-" + secrets.token_hex(8), "secret": secrets.token_hex(32)}


async def test_an_approle_token_with_a_short_ttl_is_renewed_and_replaced_without_a_gap(
    bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    """TTL 2 s, max TTL 5 s, watched for 11 s: renewals at 2/3 of the TTL, and a fresh login
    each time the max TTL caps renewal; the key never misses a poll."""
    path, first = unique("gate/bot"), pair()
    bao_dev.put(path, first)
    policy = bao_dev.policy(unique("gate-read"), path)
    mount, role_id, secret_id = bao_dev.approle([policy], token_ttl="2s", token_max_ttl="5s")
    secret_id_file = tmp_path / "secret-id"
    secret_id_file.write_text(secret_id)
    auth = AppRoleAuth(
        method="approle", mount=mount, role_id=role_id, secret_id_file=secret_id_file
    )
    leaks.add(secret=first["secret"], secret_id=secret_id)
    tokens: set[str] = set()
    async with running_kv(bao_dev, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        deadline = time.monotonic() + 11
        worst_stale = 0.0
        while time.monotonic() < deadline:
            assert kv.slot.current().api_key == first["key"]
            worst_stale = max(worst_stale, kv.slot.stale_seconds)
            tokens.add(await kv.session.token())
            await asyncio.sleep(0.1)  # pace: one sample every 0.1 s for 11 s of token lifecycle
        assert kv.session.renewals >= 4, "tokens were renewed at about 2/3 of their TTL"
        assert kv.session.logins >= 3, "a fresh login replaced each token at its max TTL"
        assert len(tokens) >= 3
        assert kv.session.errors.get("forbidden", 0) == 0, "no call ever used an expired token"
        assert worst_stale < INTERVAL + 1
        ttl = kv.session.token_ttl_s
        assert ttl is not None and 0 < ttl <= 2
    leaks.add(**{f"token{i}": t for i, t in enumerate(tokens)})


async def test_a_rotated_secret_id_file_is_read_at_the_next_login(
    bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path = unique("gate/bot")
    bao_dev.put(path, pair())
    policy = bao_dev.policy(unique("gate-read"), path)
    mount, role_id, old = bao_dev.approle([policy], token_ttl="60s", token_max_ttl="120s")
    role_id_file, secret_id_file = tmp_path / "role-id", tmp_path / "secret-id"
    role_id_file.write_text(role_id + "\n")
    secret_id_file.write_text(old)
    auth = AppRoleAuth(
        method="approle", mount=mount, role_id_file=role_id_file, secret_id_file=secret_id_file
    )
    new = bao_dev.secret_id(mount)
    leaks.add(old=old, new=new)
    async with running_kv(bao_dev, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        secret_id_file.write_text(new)
        bao_dev.admin().auth.approle.destroy_secret_id("gate-bot", old, mount_point=mount)
        await kv.session.token_forbidden()  # as a 403 elsewhere would
        assert kv.session.logins == 2 and kv.session.errors.get("login", 0) == 0
        leaks.add(token=await kv.session.token())


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        ("wrong-secret-id", "logging in to Vault (approle)"),
        ("missing-file", "cannot read secret_id_file"),
        ("empty-file", "is empty"),
    ],
)
async def test_a_failing_approle_login_leaves_the_key_empty_with_the_reason(
    bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path, break_it: str, reason: str
) -> None:
    path = unique("gate/bot")
    bao_dev.put(path, pair())
    policy = bao_dev.policy(unique("gate-read"), path)
    mount, role_id, secret_id = bao_dev.approle([policy], token_ttl="60s", token_max_ttl="60s")
    secret_id_file = tmp_path / "secret-id"
    wrong = secrets.token_hex(16)
    if break_it == "wrong-secret-id":
        secret_id_file.write_text(wrong)
    elif break_it == "empty-file":
        secret_id_file.write_text("\n")
    auth = AppRoleAuth(
        method="approle", mount=mount, role_id=role_id, secret_id_file=secret_id_file
    )
    leaks.add(secret_id=secret_id, wrong=wrong)
    async with running_kv(bao_dev, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.source.attempted.is_set(), 10, "first poll")
        assert not kv.slot.ready and reason in kv.slot.reason
        assert kv.session.errors.get("login", 0) >= 1
        # Fixing the file is enough: the next login reads it.
        secret_id_file.write_text(secret_id)
        await eventually(lambda: kv.slot.ready, 5, "slot filled after the fix")


async def test_kubernetes_auth_logs_in_through_the_tokenreview_api(
    bao_dev: DevBao, leaks: LeakCheck, tokenreview: TokenReview, tmp_path: Path
) -> None:
    path, first = unique("gate/bot"), pair()
    bao_dev.put(path, first)
    policy = bao_dev.policy(unique("gate-read"), path)
    mount = await asyncio.to_thread(tokenreview.configure, bao_dev, [policy], "60s")
    jwt_file = tmp_path / "token"
    jwt_file.write_text(tokenreview.jwt)
    auth = KubernetesAuth(method="kubernetes", role="gate-bot", mount=mount, jwt_file=jwt_file)
    leaks.add(secret=first["secret"], jwt=tokenreview.jwt, reviewer=tokenreview.reviewer_jwt)
    async with running_kv(bao_dev, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        assert kv.slot.current().api_key == first["key"]
        assert tokenreview.approved == 1
        ttl = kv.session.token_ttl_s
        assert ttl is not None and 50 < ttl <= 60
        leaks.add(token=await kv.session.token())

        # The kubelet rotates the projected token: the next login must send the new one.
        rotated = service_account_jwt(tokenreview.namespace, tokenreview.name, tokenreview.uid)
        tokenreview.jwt = rotated
        jwt_file.write_text(rotated)
        leaks.add(rotated=rotated)
        await kv.session.token_forbidden()
        assert kv.session.logins == 2 and tokenreview.approved == 2
        leaks.add(token2=await kv.session.token())


async def test_a_kubernetes_jwt_the_cluster_rejects_is_a_login_failure(
    bao_dev: DevBao, leaks: LeakCheck, tokenreview: TokenReview, tmp_path: Path
) -> None:
    path = unique("gate/bot")
    bao_dev.put(path, pair())
    mount = await asyncio.to_thread(tokenreview.configure, bao_dev, ["default"], "60s")
    stranger = service_account_jwt(tokenreview.namespace, tokenreview.name, tokenreview.uid)
    jwt_file = tmp_path / "token"
    jwt_file.write_text(stranger)
    auth = KubernetesAuth(method="kubernetes", role="gate-bot", mount=mount, jwt_file=jwt_file)
    leaks.add(jwt=stranger, reviewer=tokenreview.reviewer_jwt, good=tokenreview.jwt)
    async with running_kv(bao_dev, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.source.attempted.is_set(), 10, "first poll")
        assert not kv.slot.ready and "logging in to Vault (kubernetes)" in kv.slot.reason
        assert tokenreview.reviews >= 1 and tokenreview.approved == 0
