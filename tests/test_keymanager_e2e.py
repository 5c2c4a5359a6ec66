"""The key manager end to end: OpenBao, the test exchange, a running sidecar and trading bots.

Durations are seconds (rotate every 2 s, retire after 0.4 s idle); every wait is an
``eventually`` on what the exchange and Vault hold.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sidecar.devtools.exchange.subaccounts import Fault
from sidecar.keymanager.progress import Phase, Progress, ProgressBook
from sidecar.vault.transit.signer import TransitSigner
from tests.fixtures_bao import Bao, RaftBao, eventually
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_transit import Transit
from tests.keymanager_harness import SOURCE_IP, make_world, trading
from tests.leaks import leaks_in


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
    # each previous key was in use, then idle for retire_idle (0.4 s) before it was deleted
    for key_id in subs.deleted:
        last = max(r.timestamp for r in exchange.state.verified(key_id))
        [deleted] = [
            r.timestamp
            for r in exchange.state.verified(world.main_key)
            if r.method == "DELETE" and r.raw_path.endswith(key_id)
        ]
        assert deleted - last >= 0.4, (deleted - last, key_id)
    stored = world.stored_key()
    assert stored is not None and set(world.sub_keys()) == {stored}
    key = subs.keys[stored]
    assert key.ip_whitelist == [SOURCE_IP]
    assert {p["name"]: p["read_only"] for p in key.perms} == {"account": True, "futures": False}
    assert key.name.startswith("gs-bot-")
    ok = {"account": "bot", "result": "ok"}
    rotations = manager.metrics.registry.get_sample_value("gate_sidecar_keys_rotations_total", ok)
    assert rotations is not None and rotations >= 4  # the first key and three rotations


async def test_transit_store_never_writes_the_secret_to_kv(
    bao_dev: Bao, exchange: RunningExchange, transit: Transit
) -> None:
    world = await make_world(bao_dev, exchange, transit_mount=transit.mount)
    # transit makes its 4096-bit wrapping key on first use: seconds on a busy machine
    await asyncio.to_thread(bao_dev.admin().read, f"{transit.mount}/wrapping_key")
    subs = exchange.state.sub_accounts
    async with world.running():
        await eventually(lambda: world.stored_key() is not None, 10, "the first key is imported")
        async with trading(world) as bots:
            await eventually(lambda: len(subs.deleted) >= 1, 15, "one rotation, retired")
            await eventually(world.converged, 5, "the previous key retired")
            stored = world.stored_key()
            slot = bots.sidecar.keys["bot"].source.slot
            await eventually(
                lambda: slot.credentials is not None and slot.credentials.api_key == stored,
                5,
                "the sidecar signs with the new key",
            )
            assert isinstance(slot.credentials.signer, TransitSigner)  # type: ignore[union-attr]
            served = bots.ok
            await eventually(lambda: bots.ok > served + 5, 5, "trading with the new key")
        world.register_minted()
        assert bots.failed == [], bots.failed[:3]
    assert stored is not None and exchange.state.verified(stored)
    minted = [k.secret for k in world.minted()]
    assert len(minted) >= 2
    texts = await asyncio.to_thread(world.kv_texts)
    assert any("bot-key" in where for where in texts)
    for secret in minted:
        assert not any(secret in text for text in texts.values()), "a minted secret is in KV"
    assert leaks_in(texts) == [f"{world.base}/main@1"]  # only the main key's own pair


SUB_KEYS = r"^/api/v4/sub_accounts/\d+/keys$"
ONE_KEY = r"^/api/v4/sub_accounts/\d+/keys/[^/]+$"


async def test_gate_failing_at_every_step_loses_nothing(
    bao_dev: Bao, exchange: RunningExchange
) -> None:
    """5xx, 429 and timeouts on the list, the create (also after it took effect), the
    activation read, the drift check and the delete: retried, no orphan, bots unaffected."""
    world = await make_world(bao_dev, exchange)
    subs = exchange.state.sub_accounts
    async with world.running() as manager:
        await eventually(lambda: world.stored_key() is not None, 10, "the first key is minted")
        async with trading(world) as bots:
            subs.faults += [
                Fault("GET", SUB_KEYS, 503, count=2),
                Fault("POST", SUB_KEYS, 500, count=1),
                Fault("POST", SUB_KEYS, 429, count=1),
                Fault("POST", SUB_KEYS, 502, after=True),  # created, but the answer is lost
                Fault("POST", SUB_KEYS, delay_s=1.5),  # created after the client gave up
                Fault("GET", r"^/api/v4/account/detail$", 500, count=3),
                Fault("DELETE", ONE_KEY, 500, count=2),
                Fault("DELETE", ONE_KEY, 429, count=1),
            ]
            await eventually(lambda: len(subs.deleted) >= 2, 30, "rotations through the faults")
            await eventually(lambda: all(f.count == 0 for f in subs.faults), 10, "faults used")
            await eventually(world.converged, 10, "one key left, the stored one")
        world.register_minted()
        assert bots.failed == [], bots.failed[:3]
    retries = manager.metrics.registry.get_sample_value("gate_sidecar_keys_gate_retries_total")
    assert retries is not None and retries >= 6
    orphans = manager.metrics.registry.get_sample_value(
        "gate_sidecar_keys_orphans_deleted_total", {"account": "bot"}
    )
    assert orphans is not None and orphans >= 1  # the create whose answer was lost


async def test_vault_sealed_during_the_store_step(
    bao_raft: RaftBao, exchange: RunningExchange
) -> None:
    world = await make_world(bao_raft, exchange)
    subs = exchange.state.sub_accounts
    async with world.running() as manager:
        await eventually(lambda: world.stored_key() is not None, 15, "the first key is minted")
        first = world.stored_key()
        subs.activation_delay_s = 1.0
        async with trading(world) as bots:
            # Sealed once the new key is recorded as pending, not merely minted: sealed between
            # the two, the manager rightly deletes a key it could not record (another test).
            await eventually(
                lambda: world.progress().get("pending") not in ("", None, first),
                10,
                "a rotation has minted and recorded its key",
            )
            pending = world.progress()["pending"]
            await asyncio.to_thread(lambda: bao_raft.admin().sys.seal())
            await eventually(lambda: subs.keys[pending].last_access > 0, 10, "activated")
            await asyncio.sleep(1.0)  # hold: sealed 1 s; the store step retries meanwhile
            await bao_raft.aunseal()
            await eventually(lambda: world.stored_key() == pending, 15, "stored after the unseal")
            await eventually(lambda: first in subs.deleted, 10, "the previous key retired")
        world.register_minted()
        assert bots.failed == [], bots.failed[:3]
        assert manager.session.errors.get("unavailable", 0) > 0  # it did meet the sealed Vault
    assert pending not in subs.deleted


async def test_vault_sealed_before_the_new_key_is_recorded(
    bao_raft: RaftBao, exchange: RunningExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealed between the mint and the record of the new key: the manager cannot remember the
    key, so it deletes it at Gate (an orphan) and fails the rotation rather than leave a key
    whose secret nobody holds; unsealed, the next pass mints again and converges."""
    world = await make_world(bao_raft, exchange)
    world.account = {"store_timeout": "1s"}  # how long it retries the record while sealed
    subs = exchange.state.sub_accounts
    write = ProgressBook.write
    sealed_at: list[str] = []  # the key minted when the seal landed

    async def seal_then_write(book: ProgressBook, account: str, progress: Progress) -> None:
        if progress.phase is Phase.MINTED and not sealed_at:
            sealed_at.append(progress.pending or "")
            await asyncio.to_thread(lambda: bao_raft.admin().sys.seal())
        await write(book, account, progress)

    monkeypatch.setattr(ProgressBook, "write", seal_then_write)
    async with world.running() as manager:
        await eventually(
            lambda: bool(sealed_at) and sealed_at[0] in subs.deleted, 15, "the key deleted"
        )
        await bao_raft.aunseal()
        await eventually(lambda: world.stored_key() is not None, 15, "a key stored after it")
        await eventually(world.converged, 10, "one key at Gate: the stored one")
        orphans = manager.metrics.registry.get_sample_value(
            "gate_sidecar_keys_orphans_deleted_total", {"account": "bot"}
        )
        assert orphans is not None and orphans >= 1
    world.register_minted()
    assert world.stored_key() != sealed_at[0]


async def test_two_managers_only_one_acts(bao_dev: Bao, exchange: RunningExchange) -> None:
    world = await make_world(bao_dev, exchange)
    world.account = {"rotate_every": "1h", "retire_max_wait": "2s"}
    async with contextlib.AsyncExitStack() as first, contextlib.AsyncExitStack() as second:
        one = await first.enter_async_context(world.running())
        two = await second.enter_async_context(world.running())
        await eventually(lambda: one.lock.held or two.lock.held, 10, "one manager leads")
        await eventually(lambda: world.stored_key() is not None, 10, "the first key is minted")
        leader, follower = (one, two) if one.lock.held else (two, one)
        await eventually(lambda: leader.passes >= 5, 10, "the leader works")
        assert not follower.lock.held and follower.passes == 0
        assert follower.readiness()["problems"][0].startswith("standby")
        assert len(world.minted()) == 1  # one key, not one per manager
        # the leader stops (it releases the lock): the follower takes over
        await (first if leader is one else second).aclose()
        await eventually(lambda: follower.lock.held, 10, "the follower takes over")
        await eventually(lambda: follower.passes > 0, 10, "...and works")
        assert len(world.minted()) == 1
    world.register_minted()


async def test_drift_is_repaired_with_a_full_put(bao_dev: Bao, exchange: RunningExchange) -> None:
    world = await make_world(bao_dev, exchange)
    world.account = {"rotate_every": "1h", "retire_max_wait": "2s"}
    async with world.running() as manager:
        await eventually(lambda: world.stored_key() is not None, 10, "the first key is minted")
        stored = world.stored_key()
        assert stored is not None
        key = exchange.state.sub_accounts.keys[stored]
        key.perms = [{"name": "futures", "read_only": False}, {"name": "spot", "read_only": False}]
        key.ip_whitelist = ["198.51.100.1"]
        await eventually(lambda: key.ip_whitelist == [SOURCE_IP], 10, "the whitelist put back")
        assert {p["name"]: p["read_only"] for p in key.perms} == {
            "account": True,
            "futures": False,
        }
        repairs = manager.metrics.registry.get_sample_value(
            "gate_sidecar_keys_drift_repairs_total", {"account": "bot"}
        )
        assert repairs == 1
    world.register_minted()
    puts = [r for r in exchange.state.requests if r.method == "PUT"]
    assert len(puts) == 1 and b'"ip_whitelist"' in puts[0].body and b'"perms"' in puts[0].body
