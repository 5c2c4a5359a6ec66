"""The one-shot commands (rotate, status, retire, lock, unlock) and the admin listener, against
OpenBao and the test exchange."""

from __future__ import annotations

import asyncio
import io

from aiohttp.test_utils import TestClient, TestServer

from sidecar.keymanager.cli import one_shot
from sidecar.keymanager.manager import admin_app
from tests.fixtures_bao import Bao, eventually
from tests.fixtures_exchange import RunningExchange
from tests.keymanager_harness import USER_ID, make_world


async def test_rotate_status_lock_unlock_retire(bao_dev: Bao, exchange: RunningExchange) -> None:
    world = await make_world(bao_dev, exchange)
    world.account = {"rotate_every": "1h", "retire_max_wait": "1s"}
    cfg = world.config()
    subs = exchange.state.sub_accounts

    async def command(name: str, account: str | None = "bot") -> tuple[int, str]:
        out = io.StringIO()
        code = await one_shot(cfg, name, account, out, environ=world.environ)
        return code, out.getvalue()

    code, text = await command("rotate")
    assert code == 0 and "rotated bot: new key" in text
    first = world.stored_key()
    assert first is not None and text.rstrip().endswith("stored")
    code, text = await command("status", None)
    assert code == 0
    header, row = text.splitlines()
    assert header.split()[0] == "ACCOUNT" and row.split()[0] == "bot" and "normal" in row
    assert first not in text  # a fingerprint, never the key id
    code, _ = await command("rotate")
    second = world.stored_key()
    assert code == 0 and second != first and first in world.sub_keys()  # in its retire window
    # another rotation while the previous key may still be in use is refused...
    code, _ = await command("rotate")
    assert code == 1 and world.stored_key() == second
    # ...and goes through once retire_max_wait has passed (the previous key deleted first)
    await asyncio.sleep(1.1)  # hold: past retire_max_wait (1 s), a time-based rule
    code, _ = await command("rotate")
    assert code == 0 and first in subs.deleted and second in world.sub_keys()
    code, _ = await command("lock")
    assert code == 0 and USER_ID in subs.locked
    code, text = await command("status", None)
    assert "locked" in text
    code, _ = await command("unlock")
    assert code == 0 and USER_ID not in subs.locked
    code, _ = await command("retire")
    assert code == 0 and world.stored_key() is None and world.sub_keys() == {}
    world.register_minted()


async def test_admin_listener(bao_dev: Bao, exchange: RunningExchange) -> None:
    world = await make_world(bao_dev, exchange)
    async with world.running() as manager:
        client = TestClient(TestServer(admin_app(manager)))
        await client.start_server()
        try:
            assert (await client.get("/healthz")).status == 200
            await eventually(lambda: manager.ready, 10, "the manager is ready")
            ready = await client.get("/readyz")
            assert ready.status == 200 and (await ready.json())["problems"] == []
            await eventually(lambda: world.stored_key() is not None, 10, "a key is minted")
            text = await (await client.get("/metrics")).text()
            for name in (
                "gate_sidecar_keys_key_age_seconds",
                "gate_sidecar_keys_next_rotation_timestamp_seconds",
                "gate_sidecar_keys_rotations_total",
                "gate_sidecar_keys_rotate_every_seconds",
                "gate_sidecar_keys_lock_held 1.0",
            ):
                assert name in text, name
        finally:
            await client.close()
    world.register_minted()
