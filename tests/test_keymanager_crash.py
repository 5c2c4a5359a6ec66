"""The manager SIGKILLed after each step of a rotation and started again: it converges, no key
is left at Gate without its secret in the store, the bots never notice, and no secret appears
in anything the processes printed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.fixtures_bao import Bao, eventually
from tests.fixtures_exchange import RunningExchange
from tests.keymanager_harness import (
    ManagerProcess,
    make_world,
    no_leak_in_output,
    start_process,
    trading,
)

START_S = 20.0  # a fresh interpreter on a busy machine


async def _kill_after(world_start: ManagerProcess, event: str) -> None:
    await eventually(lambda: world_start.saw(event), START_S, f"the manager reports {event}")
    world_start.kill()


async def test_sigkill_after_each_step_converges_without_orphans(
    bao_dev: Bao, exchange: RunningExchange, tmp_path: Path
) -> None:
    world = await make_world(bao_dev, exchange)
    world.account = {"rotate_every": "1500ms"}
    exchange.state.sub_accounts.activation_delay_s = 0.6  # room to kill between mint and store
    config = world.write_config(tmp_path)
    outputs: list[Path] = []

    def start() -> ManagerProcess:
        outputs.append(tmp_path / f"manager-{len(outputs)}.log")
        return start_process(world, config, outputs[-1])

    # the very first key: killed once stored (the kills below cover every step with bots on)
    await _kill_after(start(), "stored")
    async with trading(world) as bots:
        for event in ("minted", "activated", "stored", "retired"):
            await _kill_after(start(), event)
        last = start()
        try:
            await eventually(world.converged, START_S, "converged after the last restart")
            await eventually(lambda: last.saw("retired"), START_S, "a whole rotation after")
            await eventually(world.converged, 10, "converged again")
        finally:
            last.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(last.proc.wait, 10)
    assert code == 0
    world.register_minted()
    assert bots.failed == [], bots.failed[:3]
    # stopped at any point: the keys left are the stored one and, maybe, the one being retired
    assert world.no_orphan()
    subs = exchange.state.sub_accounts
    assert {k.key for k in world.minted()} == set(subs.deleted) | set(world.sub_keys())
    texts = [p.read_text(errors="replace") for p in outputs]
    assert any('"orphan_deleted"' in t for t in texts)  # the key killed before its store
    assert no_leak_in_output(*texts) == []
