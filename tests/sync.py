"""Waiting in tests: on a condition, never for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


async def eventually(
    predicate: Callable[[], bool], timeout: float, what: str = "condition", step: float = 0.02
) -> float:
    """Wait (bounded) until ``predicate()`` holds; the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not true after {timeout:g}s")
        await asyncio.sleep(step)
    return time.monotonic() - start
