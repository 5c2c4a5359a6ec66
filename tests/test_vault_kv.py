"""The Vault KV source against a real `bao server -dev`: loading, rotation, revocation."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.credentials.rotation import CanaryResult
from sidecar.credentials.slot import Credentials
from sidecar.errors import KeyUnavailable
from sidecar.gate.signing import hmac_sha512_hex
from sidecar.vault.auth.token import TokenAuth
from tests.fixtures_bao import DevBao, LeakCheck, running_kv, unique
from tests.sync import eventually

INTERVAL = 1.0


def pair() -> dict[str, str]:
    return {"key": "key-" + secrets.token_hex(8), "secret": secrets.token_hex(32)}


async def signs_with(creds: Credentials, secret: str) -> bool:
    return await creds.signer.sign(b"msg") == hmac_sha512_hex(secret.encode(), b"msg")


async def test_a_kv2_secret_fills_the_slot_with_its_whole_pair(
    bao_dev: DevBao, leaks: LeakCheck
) -> None:
    path, first = unique("gate/bot"), pair()
    bao_dev.put(path, first)
    leaks.add(secret=first["secret"], token=bao_dev.root_token)
    async with running_kv(bao_dev, path, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        creds = kv.slot.current()
        assert creds.api_key == first["key"] and creds.version == "1"
        assert await signs_with(creds, first["secret"])
        assert kv.session.logins == 1 and kv.session.token_ttl_s is None  # root: no expiry


async def test_a_kv1_secret_fills_the_slot_and_a_changed_value_is_picked_up(
    bao_dev: DevBao, leaks: LeakCheck
) -> None:
    path, first, second = unique("gate/v1"), pair(), pair()
    bao_dev.put_v1(path, first)
    leaks.add(first=first["secret"], second=second["secret"])
    async with running_kv(bao_dev, path, mount="kv1", kv_version=1, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        assert kv.slot.current().api_key == first["key"]
        held = kv.slot.version
        bao_dev.put_v1(path, second)
        await eventually(lambda: kv.slot.version != held, INTERVAL + 1, "KV v1 change seen")
        assert await signs_with(kv.slot.current(), second["secret"])


async def test_a_new_kv2_version_is_in_use_within_the_interval_plus_one_second(
    bao_dev: DevBao, leaks: LeakCheck
) -> None:
    path, first, second = unique("gate/bot"), pair(), pair()
    bao_dev.put(path, first)
    leaks.add(first=first["secret"], second=second["secret"])
    reads: list[str] = []
    async with running_kv(bao_dev, path, interval_s=INTERVAL) as kv:
        call = kv.session.call

        async def spy(fn: Callable[..., Any], *, what: str = "") -> Any:
            reads.append(what)
            return await call(fn, what=what)

        kv.session.call = spy  # type: ignore[method-assign]
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        await eventually(lambda: len(reads) >= 4, 4 * INTERVAL, "a few polls")
        # A steady state reads metadata only: the secret itself crossed the wire once.
        assert sum("/data/" in r for r in reads) == 1
        written = time.monotonic()
        version = await bao_dev.aput(path, second)
        await eventually(lambda: kv.slot.version == str(version), INTERVAL + 1, "rotation seen")
        assert time.monotonic() - written <= INTERVAL + 1
        creds = kv.slot.current()
        assert creds.api_key == second["key"] and await signs_with(creds, second["secret"])


def _delete_latest(bao: DevBao, path: str) -> None:
    bao.admin().secrets.kv.v2.delete_latest_version_of_secret(path=path)


def _destroy_current(bao: DevBao, path: str) -> None:
    meta = bao.admin().secrets.kv.v2.read_secret_metadata(path=path)
    bao.admin().secrets.kv.v2.destroy_secret_versions(
        path=path, versions=[meta["data"]["current_version"]]
    )


def _delete_everything(bao: DevBao, path: str) -> None:
    bao.admin().secrets.kv.v2.delete_metadata_and_all_versions(path=path)


@pytest.mark.parametrize(
    ("remove", "reason"),
    [
        (_delete_latest, "is deleted"),
        (_destroy_current, "is destroyed"),
        (_delete_everything, "not found"),
    ],
    ids=["deleted", "destroyed", "metadata-deleted"],
)
async def test_a_removed_secret_revokes_the_key_within_one_interval_until_a_new_version(
    bao_dev: DevBao,
    leaks: LeakCheck,
    remove: Callable[[DevBao, str], None],
    reason: str,
) -> None:
    path, first, second = unique("gate/bot"), pair(), pair()
    bao_dev.put(path, first)
    leaks.add(first=first["secret"], second=second["secret"])
    async with running_kv(bao_dev, path, interval_s=INTERVAL) as kv:
        other = kv.add(path, "other-key")  # same secret, but this key is left alone below
        await eventually(lambda: kv.slot.ready and other.slot.ready, 10, "slots filled")
        remove(bao_dev, path)
        await eventually(lambda: not kv.slot.ready, INTERVAL + 1, "key revoked")
        with pytest.raises(KeyUnavailable, match=reason):
            kv.slot.current()
        # Writing a new version is how the key comes back.
        await bao_dev.aput(path, second)
        await eventually(lambda: kv.slot.ready, INTERVAL + 1, "key back")
        assert kv.slot.current().api_key == second["key"]


async def test_a_deleted_kv1_secret_revokes_the_key(bao_dev: DevBao, leaks: LeakCheck) -> None:
    path, first = unique("gate/v1"), pair()
    bao_dev.put_v1(path, first)
    leaks.add(secret=first["secret"])
    async with running_kv(bao_dev, path, mount="kv1", kv_version=1, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        bao_dev.admin().secrets.kv.v1.delete_secret(path=path, mount_point="kv1")
        await eventually(lambda: not kv.slot.ready, INTERVAL + 1, "key revoked")
        assert "not found" in kv.slot.reason


async def test_a_version_the_canary_rejects_is_not_switched_to(
    bao_dev: DevBao, leaks: LeakCheck
) -> None:
    path, good, bad, fixed = unique("gate/bot"), pair(), pair(), pair()
    leaks.add(good=good["secret"], bad=bad["secret"], fixed=fixed["secret"])
    tried: list[str] = []

    async def canary(name: str, creds: Credentials) -> CanaryResult:
        tried.append(creds.version)
        if creds.api_key == bad["key"]:
            return CanaryResult(False, "HTTP 401 INVALID_KEY")
        return CanaryResult(True, "HTTP 200")

    bao_dev.put(path, good)
    async with running_kv(bao_dev, path, interval_s=INTERVAL, canary=canary) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        await bao_dev.aput(path, bad)
        await eventually(lambda: tried.count("2") >= 2, 2 * INTERVAL + 1, "canary retried")
        assert kv.slot.current().api_key == good["key"] and kv.slot.version == "1"
        assert "rejected by canary" in (kv.slot.last_error or "")
        await bao_dev.aput(path, fixed)
        await eventually(lambda: kv.slot.version == "3", INTERVAL + 1, "fixed version taken")
        assert await signs_with(kv.slot.current(), fixed["secret"])


async def test_a_version_missing_its_fields_keeps_the_held_pair(
    bao_dev: DevBao, leaks: LeakCheck
) -> None:
    path, first = unique("gate/bot"), pair()
    bao_dev.put(path, first)
    leaks.add(secret=first["secret"])
    async with running_kv(bao_dev, path, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        await bao_dev.aput(path, {"key": "only-a-key"})
        await eventually(lambda: "'secret'" in (kv.slot.last_error or ""), INTERVAL + 1, "error")
        assert kv.slot.current().api_key == first["key"]


async def test_custom_mount_and_field_names_are_read(bao_dev: DevBao, leaks: LeakCheck) -> None:
    mount, path = unique("kv"), unique("gate/bot")
    bao_dev.admin().sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    data = {"api_key": "key-" + secrets.token_hex(4), "api_secret": secrets.token_hex(32)}
    bao_dev.put(path, data, mount=mount)
    leaks.add(secret=data["api_secret"])
    async with running_kv(
        bao_dev, path, mount=mount, key_field="api_key", secret_field="api_secret"
    ) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        assert await signs_with(kv.slot.current(), data["api_secret"])


async def test_losing_the_policy_revokes_the_key_after_a_fresh_login(
    bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path, first = unique("gate/bot"), pair()
    bao_dev.put(path, first)
    policy = bao_dev.policy(unique("gate-read"), path)
    token = bao_dev.child_token([policy])
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    leaks.add(secret=first["secret"], token=token)
    auth = TokenAuth(token_file=token_file)
    async with running_kv(bao_dev, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        other = kv.add(unique("gate/other"), "unrelated")  # never readable: stays empty
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        logins = kv.session.logins
        bao_dev.admin().sys.delete_policy(policy)
        await eventually(lambda: not kv.slot.ready, INTERVAL + 1, "key revoked")
        assert "denied access" in kv.slot.reason and "/metadata/" in kv.slot.reason
        assert kv.session.logins > logins  # the 403 was confirmed with a fresh login
        assert not other.slot.ready and "denied" in other.slot.reason


async def test_a_rewritten_token_file_is_used_once_the_old_token_is_refused(
    bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path
) -> None:
    path, first = unique("gate/bot"), pair()
    bao_dev.put(path, first)
    policy = bao_dev.policy(unique("gate-read"), path)
    old, new = bao_dev.child_token([policy]), bao_dev.child_token([policy])
    token_file = tmp_path / "token"
    token_file.write_text(old)
    leaks.add(secret=first["secret"], old=old, new=new)
    auth = TokenAuth(token_file=token_file)
    async with running_kv(bao_dev, path, auth=auth, environ={}, interval_s=INTERVAL) as kv:
        await eventually(lambda: kv.slot.ready, 10, "slot filled")
        token_file.write_text(new)
        bao_dev.admin().auth.token.revoke(old)
        await eventually(lambda: kv.slot.stale_seconds < 0.5, INTERVAL + 1, "confirmed again")
        await eventually(lambda: kv.session.logins >= 2, INTERVAL + 1, "logged in again")
        assert kv.slot.ready and await kv.session.token() == new


async def test_a_rewritten_token_file_is_picked_up_without_waiting_for_a_403(
    bao_dev: DevBao, leaks: LeakCheck, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sidecar.vault.session.TOKEN_FILE_CHECK_S", 0.2)
    path = unique("gate/bot")
    bao_dev.put(path, pair())
    old, new = bao_dev.child_token(["default"]), bao_dev.child_token(["default"])
    token_file = tmp_path / "token"
    token_file.write_text(old)
    leaks.add(old=old, new=new)
    async with running_kv(bao_dev, path, auth=TokenAuth(token_file=token_file), environ={}) as kv:
        await eventually(lambda: kv.session.ready, 10, "logged in")
        token_file.write_text(new)
        await eventually(lambda: kv.session.logins >= 2, 3, "new token file read")
        assert await kv.session.token() == new


async def test_a_missing_token_leaves_the_key_empty_with_a_reason(
    bao_dev: DevBao, leaks: LeakCheck
) -> None:
    path = unique("gate/bot")
    async with running_kv(bao_dev, path, environ={}) as kv:
        await eventually(lambda: kv.source.attempted.is_set(), 10, "first poll")
        assert not kv.slot.ready and "VAULT_TOKEN is empty" in kv.slot.reason
        assert kv.session.errors.get("login", 0) >= 1
