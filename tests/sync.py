"""Waiting in tests: on the event itself, or through :func:`eventually`, never a fixed sleep.

A fixed ``sleep`` used to wait for something passes or fails by luck (too short on a loaded
machine, or never noticing that the awaited thing did not happen). Wait for an event
(``asyncio.Event``, a log line, a process's output) where there is one; otherwise poll a condition
with :func:`eventually` (coroutines) or :func:`eventually_blocking` (threads, fixtures), which fail
the test naming what never came true.

The only sleeps left in tests/ are these helpers' and those that pace load or hold a state open
(a slow fake upstream, an outage, steady traffic for a while); each says so with a comment starting
``# pace:`` or ``# hold:`` on its line. tests/test_sync.py enforces it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import pytest

Check = Callable[[], bool | Awaitable[bool]]


async def eventually(
    predicate: Check,
    timeout: float,
    what: str = "condition",
    step: float = 0.02,
    ignoring: tuple[type[BaseException], ...] = (),
) -> float:
    """Wait (bounded) until ``predicate()`` holds (it may be a coroutine function); the seconds it
    took. Exceptions of the types in ``ignoring`` count as "not yet"."""
    start = time.monotonic()
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return time.monotonic() - start
        except ignoring:
            pass
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not true after {timeout:g}s")
        await asyncio.sleep(step)


def eventually_blocking(
    predicate: Callable[[], bool],
    timeout: float,
    what: str = "condition",
    step: float = 0.02,
    ignoring: tuple[type[BaseException], ...] = (),
) -> float:
    """:func:`eventually` for code that may block (fixtures starting a server, worker threads)."""
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except ignoring:
            pass
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not true after {timeout:g}s")
        time.sleep(step)
