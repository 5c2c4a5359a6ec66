"""No test waits for a condition with a fixed sleep (tests/sync.py says why and what instead)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.sync import eventually, eventually_blocking

TESTS = Path(__file__).parent
SLEEP = re.compile(r"\b(?:time|asyncio)\.sleep\(|\bsleep\(")
REASON = re.compile(r"#\s*(?:pace|hold):")
#: Files whose remaining waiting sleep has no public event to wait on yet.
#: Each must still hold an unmarked sleep, so the entry is removed once it does not.
PENDING: set[str] = set()


def unmarked_sleeps(path: Path) -> list[int]:
    """Lines with a sleep and no ``# pace:`` / ``# hold:`` reason on them."""
    return [
        n
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SLEEP.search(line) and not REASON.search(line) and not line.lstrip().startswith("#")
    ]


def test_no_fixed_sleep_waits_for_a_condition() -> None:
    found = {
        f"{p.relative_to(TESTS)}:{n}"
        for p in TESTS.rglob("*.py")
        if p.name not in PENDING and p.name not in ("sync.py", "test_sync.py")
        for n in unmarked_sleeps(p)
    }
    assert not found, f"use tests/sync.py (or mark pacing with '# pace:'): {sorted(found)}"


def test_the_pending_files_still_hold_sleeps_else_leave_the_list() -> None:
    assert all(unmarked_sleeps(TESTS / name) for name in PENDING)


def test_the_check_finds_an_unmarked_sleep(tmp_path: Path) -> None:
    page = tmp_path / "t.py"
    page.write_text(
        "await asyncio.sleep(0.1)\ntime.sleep(1)  # pace: load\n# asyncio.sleep(1)\nsleep(2)\n"
    )
    assert unmarked_sleeps(page) == [1, 4]


async def test_eventually_returns_once_true_and_fails_naming_what_never_came() -> None:
    calls = iter([False, False, True])
    assert await eventually(lambda: next(calls), 5, "third call", step=0.001) >= 0
    with pytest.raises(pytest.fail.Exception, match=r"never: not true after 0\.01s"):
        await eventually(lambda: False, 0.01, "never", step=0.001)


async def test_eventually_awaits_a_coroutine_check_and_can_ignore_errors() -> None:
    tries = 0

    async def flaky() -> bool:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise ConnectionError
        return True

    await eventually(flaky, 5, step=0.001, ignoring=(ConnectionError,))
    assert tries == 3


def test_eventually_blocking_polls_in_the_calling_thread() -> None:
    calls = iter([False, True])
    assert eventually_blocking(lambda: next(calls), 5, step=0.001) >= 0
    with pytest.raises(pytest.fail.Exception, match="x: not true"):
        eventually_blocking(lambda: False, 0.01, "x", step=0.001)
