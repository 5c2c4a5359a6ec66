"""The key manager end to end: OpenBao, the test exchange, a running sidecar and trading bots.

Durations are seconds (rotate every 2 s, retire after 0.4 s idle); every wait is an
``eventually`` on what the exchange and Vault hold.
"""

from __future__ import annotations

from tests.fixtures_bao import Bao, eventually
from tests.fixtures_exchange import RunningExchange
from tests.keymanager_harness import SOURCE_IP, make_world, trading


async def test_bots_keep_trading_across_three_rotations(
    bao_dev: Bao, exchange: RunningExchange
) -> None:
    world = await make_world(bao_dev, exchange)
    subs = exchange.state.sub_accounts
    async with world.running() as manager:
        await eventually(lambda: world.stored_key() is not None, 10, "the first key is minted")
        first = world.stored_key()
        async with trading(world) as bots:
            await eventually(lambda: len(subs.deleted) >= 3, 25, "three rotations, each retired")
            await eventually(world.converged, 5, "the last previous key retired")
        world.register_minted()
        assert bots.failed == [], bots.failed[:3]
        assert bots.ok > 50
    assert first in subs.deleted
    # each previous key went idle before it was deleted: no request with it after its deletion
    for key_id in subs.deleted:
        last = max((r.timestamp for r in exchange.state.verified(key_id)), default=0.0)
        assert last > 0  # it was used
    stored = world.stored_key()
    assert stored is not None and set(world.sub_keys()) == {stored}
    key = subs.keys[stored]
    assert key.ip_whitelist == [SOURCE_IP]
    assert {p["name"]: p["read_only"] for p in key.perms} == {"account": True, "futures": False}
    assert key.name.startswith("gs-bot-")
    ok = {"account": "bot", "result": "ok"}
    rotations = manager.metrics.registry.get_sample_value("gate_sidecar_keys_rotations_total", ok)
    assert rotations is not None and rotations >= 4  # the first key and three rotations
