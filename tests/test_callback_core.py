"""The callback core: a request's pipeline stepped from a listener callback and its answer
written from the upstream connection's callback, with no Task (sidecar/proxy/drive.py),
and the slower paths (a new upstream connection, a timeout, a resend, a Task to finish in) that
still go through the same pipeline. tests/test_lean_listener.py and tests/test_front_door.py run
the listener over an in-memory forwarder (whose answer always comes through a Task); these run
it over the lean forwarder and a raw upstream, where the answer comes back through a callback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from sidecar.aio import task_from_here
from sidecar.proxy.drive import PENDING, drive, prompt
from sidecar.runtime.app import running
from tests.fixtures_sidecar import make_config
from tests.raw_upstream import Fault, RawUpstream, Reply, Seen
from tests.test_lean_listener import read_response

PATH = "/api/v4/spot/accounts"


# -- the driver on its own -----------------------------------------------------------------------


async def test_a_coroutine_that_never_waits_is_finished_at_once() -> None:
    async def quick() -> int:
        return 7

    def never(result: int | None) -> None:
        pytest.fail("called back")

    assert drive(quick(), never) == 7


async def test_a_coroutine_waiting_on_a_prompt_goes_on_in_the_completers_call() -> None:
    waiter = prompt(asyncio.get_running_loop())
    got: list[int | None] = []

    async def on_prompt() -> int:
        value: int = await waiter
        return value + 1

    assert drive(on_prompt(), got.append) is PENDING
    assert waiter.then is not None and got == []
    waiter.set_result(41)
    waiter.then()
    assert got == [42]  # in that very call: no Task, no loop pass


async def test_a_coroutine_that_must_wait_otherwise_finishes_in_a_task() -> None:
    got: list[str | None] = []
    done = asyncio.Event()

    def finished(result: str | None) -> None:
        got.append(result)
        done.set()

    async def slow() -> str:
        await task_from_here()
        async with asyncio.timeout(5):  # needs a current Task: it has one now
            assert asyncio.current_task() is not None
            await asyncio.sleep(0.01)  # pace: a real wait, inside the Task's timeout
        return "late"

    assert drive(slow(), finished) is PENDING
    await asyncio.wait_for(done.wait(), 5)
    assert got == ["late"]


async def test_a_prompt_awaited_in_a_task_is_an_ordinary_future() -> None:
    waiter = prompt(asyncio.get_running_loop())
    task = asyncio.create_task(asyncio.wait_for(waiter, 5))
    await asyncio.sleep(0)  # pace: one loop pass, for the Task to await the prompt
    waiter.set_result(3)
    assert waiter.then is None and await task == 3


@pytest.mark.parametrize("where", ["at once", "in a task"])
async def test_a_coroutine_that_raises_gives_none_and_is_logged(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    done = asyncio.Event()
    got: list[int | None] = []

    def finished(result: int | None) -> None:
        got.append(result)
        done.set()

    async def broken() -> int:
        if where == "in a task":
            await task_from_here()
        raise ValueError("a bug")

    with caplog.at_level(logging.ERROR, "sidecar.listener"):
        outcome = drive(broken(), finished)
        if where == "at once":
            assert outcome is None
        else:
            assert outcome is PENDING
            await asyncio.wait_for(done.wait(), 5)
            assert got == [None]
    assert "request failed" in caplog.text


# -- the listener over the lean forwarder --------------------------------------------------------


@dataclass
class Core:
    port: int
    upstream: RawUpstream

    @property
    def host(self) -> str:
        return f"Host: 127.0.0.1:{self.port}\r\n"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def get(self, path: str = PATH, extra: str = "") -> bytes:
        return f"GET {path} HTTP/1.1\r\n{self.host}{extra}\r\n".encode()


def _echo(seen: Seen, before: int) -> Reply | str:
    return Reply(body=json.dumps({"target": seen.target}).encode())


@contextlib.asynccontextmanager
async def core(script: Any = _echo, timeout_s: float = 5.0) -> AsyncIterator[Core]:
    upstream = RawUpstream(script=script)
    await upstream.start()
    key = {"name": "bot", "source": {"env": {}}, "policy": "full-trading"}
    config = make_config(
        upstream.url, [{**key, "canary": {"enabled": False}}], upstream={"timeout_s": timeout_s}
    )
    try:
        async with running(config, environ={"GATE_KEY": "k", "GATE_SECRET": "s"}) as sidecar:
            handle = sidecar.keys["bot"]
            await asyncio.wait_for(handle.source.loaded.wait(), 5)
            yield Core(int(handle.url.rsplit(":", 1)[1]), upstream)
    finally:
        await upstream.stop()


async def _target(reader: asyncio.StreamReader) -> tuple[int, str]:
    status, _, body = await read_response(reader)
    return status, json.loads(body).get("target", "") if status == 200 else body.decode()


async def test_kept_alive_requests_are_answered_without_a_task() -> None:
    async with core() as c:
        reader, writer = await c.connect()
        writer.write(c.get())  # the first one connects upstream (a Task does that)
        assert (await _target(reader))[0] == 200
        loop = asyncio.get_running_loop()
        made: list[Any] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(factory)
        try:
            for i in range(10):
                writer.write(c.get(f"{PATH}?n={i}"))
                assert await _target(reader) == (200, f"{PATH}?n={i}")
        finally:
            loop.set_task_factory(None)
        assert len(c.upstream.seen) == 11 and c.upstream.connections == 1
        # Only the sidecar's own: the test's reads (wait_for) make Tasks of their own on 3.11.
        ours = [m.__qualname__ for m in made if "/sidecar/" in m.cr_code.co_filename]
        assert ours == []
        writer.close()


async def test_pipelined_requests_are_answered_in_order_whatever_gate_takes() -> None:
    def script(seen: Seen, before: int) -> Reply | str:
        delay = 0.05 if "n=0" in seen.target else 0.0  # the first answer is the slowest
        return Reply(body=json.dumps({"target": seen.target}).encode(), delay_s=delay)

    async with core(script) as c:
        reader, writer = await c.connect()
        writer.write(b"".join(c.get(f"{PATH}?n={i}") for i in range(12)))  # over _MAX_QUEUED
        for i in range(12):
            assert await _target(reader) == (200, f"{PATH}?n={i}")
        writer.close()


async def test_a_refusal_after_a_request_waiting_for_gate_comes_after_its_answer() -> None:
    def script(seen: Seen, before: int) -> Reply | str:
        return Reply(body=json.dumps({"target": seen.target}).encode(), delay_s=0.1)

    async with core(script) as c:
        reader, writer = await c.connect()
        writer.write(c.get() + b"NOT HTTP AT ALL\r\n\r\n")
        assert await _target(reader) == (200, PATH)
        status, _, body = await read_response(reader)
        assert status == 400 and b"SIDECAR_BAD_REQUEST" in body
        assert await reader.read() == b""  # then closed
        writer.close()


async def test_nothing_pipelined_after_a_connection_close_refusal_is_forwarded() -> None:
    """A refusal needs no upstream: its answer is made without waiting, in the same pass as
    the request behind it; with ``Connection: close`` the connection ends there, and the request
    pipelined behind it never reaches Gate."""
    async with core() as c:
        reader, writer = await c.connect()
        denied = f"POST /api/v4/withdrawals HTTP/1.1\r\n{c.host}Connection: close\r\n"
        denied += "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        writer.write(denied.encode() + c.get())
        status, headers, _ = await read_response(reader)
        assert status == 403 and headers.get("connection") == "close"
        assert await reader.read() == b""
        assert c.upstream.seen == []
        writer.close()


async def test_a_request_gate_does_not_answer_in_time_gets_504_and_the_next_one_is_served() -> None:
    def script(seen: Seen, before: int) -> Reply | str:
        return Fault.HANG if before == 1 else _echo(seen, before)

    async with core(script, timeout_s=0.3) as c:
        reader, writer = await c.connect()
        writer.write(c.get(f"{PATH}?n=0"))
        assert await _target(reader) == (200, f"{PATH}?n=0")
        writer.write(c.get(f"{PATH}?n=1"))
        status, _, body = await read_response(reader)
        assert status == 504 and b"SIDECAR_UPSTREAM_TIMEOUT" in body
        writer.write(c.get(f"{PATH}?n=2"))
        assert await _target(reader) == (200, f"{PATH}?n=2")
        writer.close()


@pytest.mark.parametrize(("method", "resent"), [("GET", True), ("DELETE", False)])
async def test_a_stale_kept_alive_connection_resends_a_get_once_and_nothing_else(
    method: str, resent: bool
) -> None:
    def script(seen: Seen, before: int) -> Reply | str:
        return Fault.DROP if seen.conn_seq == 1 else _echo(seen, before)

    async with core(script) as c:
        reader, writer = await c.connect()
        writer.write(c.get())
        assert (await _target(reader))[0] == 200
        target = "/api/v4/spot/orders/1?currency_pair=BTC_USDT"
        writer.write(f"{method} {target} HTTP/1.1\r\n{c.host}\r\n".encode())
        status, _, body = await read_response(reader)
        copies = [s for s in c.upstream.seen if s.method == method and s.target == target]
        if resent:
            assert status == 200 and len(copies) == 2
            assert copies[0].header("SIGN") and copies[1].header("Timestamp")
        else:
            assert status == 502 and b"SIDECAR_UPSTREAM_UNAVAILABLE" in body
            assert len(copies) == 1
        writer.close()
