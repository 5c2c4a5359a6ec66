"""What every client test shares: the sidecar in front of the verifying exchange, the checks on
what reached the exchange, subprocess runners, and the record behind the compatibility table."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from sidecar.devtools.exchange import RecordedRequest
from sidecar.devtools.exchange.routes import find as exchange_route
from tests.clients.compat_table import PASS, Row
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar

HERE = Path(__file__).resolve().parent
TCP, UNIX = "TCP", "unix socket"
# Credentials a client insists on (ccxt) or still carries from before the sidecar: never Gate's.
DUMMY_KEY, DUMMY_SECRET = "dummy-key-not-gates", "dummy-secret-not-gates"
PROCESS_TIMEOUT_S = 60
# A missing toolchain fails its client test (a skip would hide a client that stopped working);
# its row reads "not run", so the compatibility table never shows it as the client failing.
TOOLCHAIN_MISSING = "toolchain missing: "
INSTALL = {"node": "Node.js 18+", "curl": "curl", "java": "a JDK 11+"}


@dataclass
class Bench:
    """One exchange, one sidecar with a key on TCP ("bot") and one on a unix socket ("sock")."""

    exchange: RunningExchange
    sidecar: RunningSidecar
    api_keys: dict[str, str]  # key name -> the real API key the sidecar signs with
    socket_path: str

    @property
    def base_url(self) -> str:
        return self.sidecar.url("bot")

    def mark(self) -> int:
        return len(self.exchange.state.requests)

    def since(self, mark: int) -> list[RecordedRequest]:
        return self.exchange.state.requests[mark:]


@contextlib.asynccontextmanager
async def bench(exchange: RunningExchange) -> AsyncIterator[Bench]:
    # A short directory of our own: unix socket paths are limited to ~107 bytes, and pytest's
    # tmp_path (named after the test) easily exceeds that.
    sock_dir = tempfile.mkdtemp(prefix="gsc-", dir="/tmp")
    socket_path = f"{sock_dir}/bot.sock"
    entries, environ, api_keys = [], {}, {}
    listeners: list[tuple[str, dict[str, str]]] = [
        ("bot", {}),
        ("sock", {"listen": f"unix:{socket_path}"}),
    ]
    for name, extra in listeners:
        entry, env, api_key, secret = env_key(name, "full-trading", **extra)
        entries.append(entry)
        environ.update(env)
        api_keys[name] = api_key
        exchange.state.add_key(api_key, secret)
    try:
        async with running_sidecar(make_config(exchange.url, entries), environ) as sidecar:
            yield Bench(exchange, sidecar, api_keys, socket_path)
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


def signing_problems(requests: list[RecordedRequest], api_key: str) -> list[str]:
    """Every request that reached the exchange must carry the sidecar's signature, made with the
    real key and an integer Timestamp, and none of the client's own credentials; and it must be
    an endpoint the exchange answers for real."""
    out = []
    if not requests:
        out.append("no request reached the exchange")
    for r in requests:
        where = f"{r.method} {r.raw_path}"
        if r.verdict not in ("ok", "public"):
            out.append(f"{where}: the exchange said {r.verdict}")
        if r.headers.getall("KEY", []) != [api_key]:
            out.append(f"{where}: KEY headers {r.headers.getall('KEY', [])}")
        if not r.headers.get("Timestamp", "").isdigit():
            out.append(f"{where}: Timestamp {r.headers.get('Timestamp')!r} is not integer seconds")
        if exchange_route(r.method, r.raw_path)[0] is None:
            # The exchange echoes paths it does not model: the client then parsed a made-up
            # answer, and its "pass" would prove nothing about real Gate-shaped answers.
            out.append(f"{where}: not an endpoint the test exchange models")
        text = str(list(r.headers.items())) + r.body.decode(errors="replace")
        for junk in (DUMMY_KEY, DUMMY_SECRET, "junk-sign"):
            if junk in text:
                out.append(f"{where}: the client's {junk!r} reached the exchange")
    return out


def assert_signed_by_sidecar(requests: list[RecordedRequest], api_key: str) -> None:
    found = signing_problems(requests, api_key)
    assert not found, "\n".join(found)


async def run(argv: list[str], stdin: bytes = b"", cwd: Path = HERE) -> bytes:
    """Run a client process without blocking the event loop the sidecar lives on."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), PROCESS_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv[0]} did not finish in {PROCESS_TIMEOUT_S} s") from None
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {err.decode()[-2000:]}"
    return out


def toolchain_missing(problem: str, install: str) -> NoReturn:
    pytest.fail(f"{TOOLCHAIN_MISSING}{problem}: install {install} to run this client test")


def tool(name: str) -> str:
    """Path of a command, or fail the test saying which toolchain to install."""
    path = shutil.which(name)
    if path is None:
        toolchain_missing(f"{name} is not installed on this machine", INSTALL.get(name, name))
    return path


@dataclass
class CompatLog:
    """The rows behind the compatibility table, in the order the tests ran."""

    rows: list[Row] = field(default_factory=list)

    @contextlib.contextmanager
    def case(self, client: str, transport: str, operations: list[str]) -> Iterator[Row]:
        """Record one client run: pass if the block completes, else fail or not run."""
        row = Row(client, transport, operations=list(operations))
        self.rows.append(row)
        try:
            yield row
        except BaseException as exc:
            msg = exc.msg if isinstance(exc, pytest.fail.Exception) else None
            if msg and msg.startswith(TOOLCHAIN_MISSING):
                row.result = f"not run: {msg.removeprefix(TOOLCHAIN_MISSING)}"
            else:
                row.result = f"fail: {type(exc).__name__}"
            raise
        row.result = PASS
