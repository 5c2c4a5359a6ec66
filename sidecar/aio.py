"""Small asyncio helpers shared by every layer that runs background tasks.

Kept here, below everything that uses them, so that the source loop, the Vault token task and
clock sync retry and stop the same way.
"""

from __future__ import annotations

import asyncio
import random


def backoff_s(failures: int, cap: float) -> float:
    """Exponential from 0.5 s, capped, jittered so many sidecars don't retry in step."""
    base = min(cap, 0.5 * 2.0 ** max(0, failures - 1))
    return base * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not crypto


def jittered(interval_s: float) -> float:
    """A polling interval shortened by up to 10%, so replicas started together drift apart."""
    return interval_s * random.uniform(0.9, 1.0)  # noqa: S311 - jitter, not crypto


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel ``task`` and wait until it has finished unwinding (its ``finally`` blocks ran).

    Only the task's own cancellation is swallowed: if the *caller* is cancelled meanwhile, that
    cancellation propagates.
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def task_from_here() -> None:
    """Make sure what follows runs in a Task: awaited first by code on a request's path that
    needs asyncio's current Task before it first suspends (``asyncio.timeout``, a library's own
    timeouts). The key listener steps a request's coroutine without a Task until it first
    waits (:mod:`sidecar.proxy.drive`); this bare yield is such a wait, and the rest goes on in
    a Task. Inside a Task already it costs one pass of the loop, on paths that wait anyway."""
    await asyncio.sleep(0)
