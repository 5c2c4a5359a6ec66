"""Signals against a real `python -m sidecar serve` process and the verifying exchange.

SIGTERM drains in-flight requests and exits 0; SIGHUP applies a new config file (or rejects a
broken one and keeps serving the old); both without dropping other keys' traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import exchange_keys
from tests.sync import eventually

LINE_WAIT_S = 20.0


@dataclass
class SidecarProcess:
    proc: asyncio.subprocess.Process
    config_path: Path
    lines: list[dict[str, Any]] = field(default_factory=list)  # JSON lines; {"raw": ...} if not
    _new_line: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            self.lines.append(doc if isinstance(doc, dict) else {"raw": text})
            self._new_line.set()

    async def wait_line(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first output line (seen or to come) that ``match`` accepts; bounded in time."""
        seen = 0

        async def scan() -> dict[str, Any]:
            nonlocal seen
            while True:
                for line in self.lines[seen:]:
                    if match(line):
                        return line
                seen = len(self.lines)
                self._new_line.clear()
                if self.proc.returncode is not None and self._reader and self._reader.done():
                    raise AssertionError(f"process exited; output: {self.lines}")
                await self._new_line.wait()

        return await asyncio.wait_for(scan(), timeout=LINE_WAIT_S)

    def urls(self) -> dict[str, str]:
        urls = {}
        for line in self.lines:
            if line.get("msg") == "key listener open":
                urls[line["key"]] = line["listen"]
            elif m := re.search(r"key listener open key=(\S+) listen=(\S+)", line.get("raw", "")):
                urls[m[1]] = m[2]
        return urls

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)


def _write_config(
    path: Path, exchange: RunningExchange, keys: list[dict[str, Any]], **sec: Any
) -> None:
    data = {
        "upstream": {"base_url": exchange.url, "timeout_s": 10},
        "admin": {"listen": "127.0.0.1:0"},
        "keys": [{"listen": "127.0.0.1:0", **k} for k in keys],
        **sec,
    }
    path.write_text(yaml.safe_dump(data))


@contextlib.asynccontextmanager
async def sidecar_process(
    config_path: Path, environ: dict[str, str]
) -> AsyncIterator[SidecarProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        "serve",
        "--config",
        str(config_path),
        env={**os.environ, **environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    sp = SidecarProcess(proc, config_path)
    sp._reader = asyncio.create_task(sp._read())
    try:
        await sp.wait_line(
            lambda d: (
                d.get("msg") == "admin listener open" or "admin listener open" in d.get("raw", "")
            )
        )
        yield sp
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), timeout=LINE_WAIT_S)
        await asyncio.wait_for(sp._reader, timeout=LINE_WAIT_S)


async def _status(http: aiohttp.ClientSession, method: str, url: str) -> int:
    async with http.request(method, url, data=b"{}" if method == "POST" else None) as resp:
        await resp.read()
        return resp.status


async def test_sigterm_lets_a_slow_request_finish_then_exits_0(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    entries, environ, _ = exchange_keys(exchange, {"bot": "read-only"})
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries, server={"shutdown_grace_s": 10})
    exchange.state.delays["/api/v4/spot/accounts"] = 2.0
    async with sidecar_process(config, environ) as sp, aiohttp.ClientSession() as http:
        url = sp.urls()["bot"]
        slow = asyncio.create_task(_status(http, "GET", url + "/api/v4/spot/accounts"))
        await eventually(  # in flight: the exchange has it and holds its answer for 2 s
            lambda: any(r.raw_path == "/api/v4/spot/accounts" for r in exchange.state.requests),
            10,
            "the request at the exchange",
        )
        assert not slow.done()
        sp.send(signal.SIGTERM)
        await sp.wait_line(lambda d: d.get("msg", "").startswith("shutting down"))
        with pytest.raises(aiohttp.ClientConnectionError):  # no longer accepting
            await _status(http, "GET", url + "/api/v4/spot/tickers")
        assert await asyncio.wait_for(slow, timeout=15) == 200
        assert await asyncio.wait_for(sp.proc.wait(), timeout=15) == 0
    assert exchange.state.requests[-1].verdict == "ok"
    assert any(d.get("msg") == "stopped" for d in sp.lines)


async def test_a_process_signs_with_gates_time_when_gate_is_5_minutes_ahead(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    exchange.state.clock_offset_s = 300.0
    entries, environ, _ = exchange_keys(exchange, {"bot": "read-only"})
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries)  # clock.sync defaults to true
    async with sidecar_process(config, environ) as sp, aiohttp.ClientSession() as http:
        assert await _status(http, "GET", sp.urls()["bot"] + "/api/v4/spot/accounts") == 200
        warning = await sp.wait_line(lambda d: d.get("logger") == "sidecar.clock")
        assert warning["level"] == "warning" and warning["offset_s"] == pytest.approx(300, abs=2)


@pytest.mark.parametrize(
    # Not named event_loop: older pytest-asyncio (the test floor) takes that name for its fixture.
    ("loop_setting", "expected"),
    [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")],
)
async def test_the_process_runs_on_the_event_loop_the_config_asks_for(
    exchange: RunningExchange, tmp_path: Path, loop_setting: str, expected: str
) -> None:
    entries, environ, _ = exchange_keys(exchange, {"bot": "read-only"})
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries, server={"event_loop": loop_setting})
    async with sidecar_process(config, environ) as sp, aiohttp.ClientSession() as http:
        assert await _status(http, "GET", sp.urls()["bot"] + "/api/v4/spot/accounts") == 200
        line = await sp.wait_line(lambda d: d.get("msg") == "event loop")
        assert line["loop"] == expected  # uvloop is in the test extras, as in the [fast] extra


async def test_sigint_also_exits_0(exchange: RunningExchange, tmp_path: Path) -> None:
    entries, environ, _ = exchange_keys(exchange, {"bot": "read-only"})
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries, logging={"format": "text"})
    async with sidecar_process(config, environ) as sp:
        sp.send(signal.SIGINT)
        assert await asyncio.wait_for(sp.proc.wait(), timeout=15) == 0
    assert any("sidecar.serve: stopped" in d.get("raw", "") for d in sp.lines)


async def test_sighup_to_a_stricter_policy_applies_and_other_keys_keep_serving(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    entries, environ, _ = exchange_keys(exchange, {"trader": "full-trading", "reader": "read-only"})
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries)
    async with sidecar_process(config, environ) as sp, aiohttp.ClientSession() as http:
        urls = sp.urls()
        order = urls["trader"] + "/api/v4/spot/orders"
        assert await _status(http, "POST", order) != 403
        statuses: list[int] = []
        stop = asyncio.Event()

        async def reader_traffic() -> None:
            while not stop.is_set() and len(statuses) < 5000:
                statuses.append(
                    await _status(http, "GET", urls["reader"] + "/api/v4/spot/accounts")
                )

        traffic = asyncio.create_task(reader_traffic())
        await eventually(lambda: len(statuses) >= 10, 10, "traffic before the reload")
        entries[0]["policy"] = "read-only"  # the trader may no longer place orders
        _write_config(config, exchange, entries)
        sp.send(signal.SIGHUP)
        applied = await sp.wait_line(lambda d: d.get("msg") == "config reloaded")
        assert applied["changed"] == {"trader": ["policy"]} and applied["unchanged"] == ["reader"]
        assert await _status(http, "POST", order) == 403
        after = len(statuses)
        await eventually(lambda: len(statuses) >= after + 10, 10, "traffic after the reload")
        stop.set()
        await traffic
        assert statuses and set(statuses) == {200}  # not one request of the other key dropped
        assert sp.urls()["reader"] == urls["reader"]  # same listener, never reopened
        async with http.get(_admin(sp) + "/metrics") as resp:
            assert 'gate_sidecar_config_reloads_total{result="applied"} 1.0' in await resp.text()


def _admin(sp: SidecarProcess) -> str:
    listen: str = next(d["listen"] for d in sp.lines if d.get("msg") == "admin listener open")
    return listen


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ("keys: [\n", "invalid YAML"),
        (None, "keys[0].policy"),  # valid YAML, invalid config: an unknown preset
    ],
)
async def test_sighup_with_a_broken_file_keeps_the_old_config_serving(
    exchange: RunningExchange, tmp_path: Path, broken: str | None, problem: str
) -> None:
    entries, environ, _ = exchange_keys(exchange, {"trader": "full-trading"})
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries)
    async with sidecar_process(config, environ) as sp, aiohttp.ClientSession() as http:
        url = sp.urls()["trader"] + "/api/v4/spot/accounts"
        if broken is None:
            _write_config(config, exchange, [{**entries[0], "policy": "no-such-preset"}])
        else:
            config.write_text(broken)
        sp.send(signal.SIGHUP)
        rejected = await sp.wait_line(
            lambda d: d.get("msg", "").startswith("config reload rejected")
        )
        assert rejected["level"] == "error"
        assert any(problem in p for p in rejected["problems"]), rejected
        assert await _status(http, "GET", url) == 200
        assert await _status(http, "POST", sp.urls()["trader"] + "/api/v4/spot/orders") != 403
        async with http.get(_admin(sp) + "/metrics") as resp:
            assert 'gate_sidecar_config_reloads_total{result="rejected"} 1.0' in await resp.text()
        sp.send(signal.SIGTERM)
        assert await asyncio.wait_for(sp.proc.wait(), timeout=15) == 0


def _audit_lines(sp: SidecarProcess) -> list[dict[str, Any]]:
    return [d for d in sp.lines if d.get("logger") == "sidecar.audit"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_every_audit_line_of_the_answers_before_a_signal_is_written(
    exchange: RunningExchange, tmp_path: Path, sig: signal.Signals
) -> None:
    """The audit lines are written in batches, once per loop iteration: a signal arriving the
    moment the last answer is read still finds every line of the answers before it written, and
    written before the signal's own lines (the shutdown, the reload)."""
    entries, environ, _ = exchange_keys(exchange, {"bot": "read-only"})
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries)
    n = 200
    async with sidecar_process(config, environ) as sp, aiohttp.ClientSession() as http:
        url = sp.urls()["bot"] + "/api/v4/spot/accounts"
        for _ in range(n // 20):  # 20 at a time: many answers, and lines, per loop iteration
            statuses = await asyncio.gather(*(_status(http, "GET", url) for _ in range(20)))
            assert set(statuses) == {200}
        sp.send(sig)
        if sig == signal.SIGTERM:
            assert await asyncio.wait_for(sp.proc.wait(), timeout=15) == 0
            after = "shutting down: draining in-flight requests"
        else:
            await sp.wait_line(lambda d: d.get("msg") == "config reloaded")
            after = "config reloaded"
            sp.send(signal.SIGTERM)
            assert await asyncio.wait_for(sp.proc.wait(), timeout=15) == 0
    audit = _audit_lines(sp)
    assert len(audit) == n and {d["status"] for d in audit} == {200}
    last_audit = max(i for i, d in enumerate(sp.lines) if d.get("logger") == "sidecar.audit")
    assert last_audit < next(i for i, d in enumerate(sp.lines) if d.get("msg") == after)
