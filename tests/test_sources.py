"""Key slots, the rotation canary, and the env and file sources."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from sidecar.credentials.rotation import CanaryResult, Rotation, canary_verdict
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.env import EnvCredentials, EnvSource
from sidecar.credentials.sources.file import FileCredentials, FileSource
from sidecar.errors import KeyUnavailable
from sidecar.gate.signing import HmacSigner
from tests.sync import eventually


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _creds(key: str = "k1", version: str = "1") -> Credentials:
    return Credentials(key, HmacSigner("s-" + key), version)


def test_an_empty_slot_refuses_with_key_unavailable() -> None:
    with pytest.raises(KeyUnavailable, match="no usable secret"):
        KeySlot("a").current()


def test_a_slot_serves_the_installed_pair_until_revoked() -> None:
    slot = KeySlot("a")
    slot.install(_creds())
    assert slot.current().api_key == "k1" and slot.ready
    slot.revoke("deleted in Vault")
    with pytest.raises(KeyUnavailable, match="deleted in Vault"):
        slot.current()


def test_a_stale_slot_keeps_serving_until_max_stale_s() -> None:
    clock = FakeTime()
    slot = KeySlot("a", max_stale_s=60, monotonic=clock)
    slot.install(_creds())
    clock.now += 59
    slot.note_error("vault unreachable")
    assert slot.current().api_key == "k1" and slot.stale_seconds == 59
    clock.now += 2
    with pytest.raises(KeyUnavailable, match="max_stale_s"):
        slot.current()
    slot.confirm()
    assert slot.current().api_key == "k1"


def test_credentials_repr_shows_a_fingerprint_not_the_key() -> None:
    text = repr(_creds("my-api-key-value"))
    assert "my-api-key-value" not in text and "s-my-api" not in text


@pytest.mark.parametrize(
    ("status", "label", "ok"),
    [
        (200, None, True),
        (401, "INVALID_KEY", False),
        (401, "INVALID_SIGNATURE", False),
        (403, "IP_FORBIDDEN", False),
        (401, "REQUEST_EXPIRED", False),
        (403, "FORBIDDEN", True),
        (403, "READ_ONLY", True),
        (500, None, False),
        (502, "SIDECAR_UPSTREAM_UNAVAILABLE", False),
    ],
)
def test_the_canary_accepts_only_answers_proving_the_key_works(
    status: int, label: str | None, ok: bool
) -> None:
    assert canary_verdict(status, label).ok is ok


async def test_a_rotation_rejected_by_the_canary_keeps_the_old_pair() -> None:
    async def canary(name: str, creds: Credentials) -> CanaryResult:
        return CanaryResult(creds.api_key != "bad", "test")

    rotation = Rotation(canary)
    events: list[tuple[str, str, str]] = []
    rotation.listeners.append(lambda *e: events.append(e))
    slot = KeySlot("a")
    assert await rotation.offer(slot, _creds("good", "1"))
    assert not await rotation.offer(slot, _creds("bad", "2"))
    assert slot.current().api_key == "good" and "rejected by canary" in (slot.last_error or "")
    assert await rotation.offer(slot, _creds("good2", "3"))
    assert slot.current().api_key == "good2"
    assert [e[1] for e in events] == ["installed", "canary_rejected", "rotated"]


async def test_the_first_load_skips_the_canary() -> None:
    called = []

    async def canary(name: str, creds: Credentials) -> CanaryResult:
        called.append(creds)
        return CanaryResult(False, "no")

    slot = KeySlot("a")
    assert await Rotation(canary).offer(slot, _creds())
    assert called == [] and slot.ready


async def test_the_env_source_loads_once() -> None:
    slot = KeySlot("a")
    src = EnvCredentials(slot, Rotation(), EnvSource(), {"GATE_KEY": "k", "GATE_SECRET": "s"})
    await asyncio.wait_for(src.run(), timeout=5)
    assert slot.current().api_key == "k"


async def test_a_missing_env_variable_is_named_without_any_value() -> None:
    slot = KeySlot("a")
    src = EnvCredentials(slot, Rotation(), EnvSource(), {"GATE_KEY": "k"})
    task = asyncio.create_task(src.run())
    await asyncio.wait_for(src.attempted.wait(), 5)
    task.cancel()
    assert "GATE_SECRET" in slot.reason and not slot.ready


def _write(path: Path, key: str, secret: str, fmt: str = "json") -> None:
    tmp = path.with_suffix(".tmp")
    text = (
        json.dumps({"key": key, "secret": secret})
        if fmt == "json"
        else (f"key: {key}\nsecret: {secret}\n")
    )
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic, like Vault Agent and Secret volumes


async def test_the_file_source_picks_up_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "gate.json"
    _write(path, "k1", "s1")
    slot = KeySlot("a")
    src = FileCredentials(slot, Rotation(), FileSource(path=path, poll_interval_s=0.05))
    task = asyncio.create_task(src.run())
    try:
        await asyncio.wait_for(src.loaded.wait(), 5)
        assert slot.current().api_key == "k1"
        _write(path, "k2", "s2", fmt="yaml")
        await eventually(lambda: slot.current().api_key == "k2", 5, "the rewritten file read")
    finally:
        task.cancel()


async def test_a_missing_or_broken_file_keeps_the_held_pair(tmp_path: Path) -> None:
    path = tmp_path / "gate.json"
    _write(path, "k1", "top-secret-value")
    slot = KeySlot("a")
    src = FileCredentials(slot, Rotation(), FileSource(path=path, poll_interval_s=0.05))
    task = asyncio.create_task(src.run())
    try:
        await asyncio.wait_for(src.loaded.wait(), 5)
        path.write_text("{not json: [")
        # The source has read the broken file (its error is recorded): the held pair stays.
        await eventually(lambda: bool(slot.last_error), 5, "the broken file read")
        broken = slot.last_error
        assert slot.current().api_key == "k1" and broken
        assert "top-secret-value" not in broken
        path.unlink()
        await eventually(lambda: slot.last_error != broken, 5, "the missing file noticed")
        assert slot.current().api_key == "k1"
    finally:
        task.cancel()
