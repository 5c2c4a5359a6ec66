"""The whole request path in process: what one request costs the sidecar's own code, no sockets.

    python bench/path.py [--n 10000] [--rounds 7]      # µs per request, best and median
    python bench/path.py --count N                     # N requests once (for callgrind)
    python bench/path.py --instructions                # instructions per request (valgrind)

The sidecar `make bench` runs (one key, ``full-trading``, env source, audit line on, metrics on)
is started in process with :func:`sidecar.runtime.app.running`. A bot connection of its key
listener and one upstream connection of its forwarder are given in-memory transports: each
request is the bytes wrk sends fed to the listener's ``data_received``, which runs admission,
checks, policy, signature and the upstream write; then nginx's answer fed to the upstream
connection's ``data_received``, which relays it to the bot; then one loop pass (the audit line,
the metrics). Everything but the kernel and the event loop's polling is in it: the listener's
parser callbacks, the pipeline, the forwarder, the observers, the audit line's write (to
/dev/null).

Timed, the figure moves with whatever else runs on the machine, like every timing here. Counted
(``--instructions``: valgrind's callgrind over ``--count`` runs of two sizes, the difference
divided by the difference in requests, with a fixed hash seed) it does not: the same code gives
the same count to a fraction of a percent, which is what tells a 2% change apart on a shared
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sidecar.config import parse_config
from sidecar.ops.logs import setup_logging
from sidecar.proxy.lean_forwarder import LeanForwarder
from sidecar.runtime.app import running
from sidecar.runtime.listeners import LeanListener

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import BENCH_KEY, GATE_BODY, PATH  # noqa: E402 (bench/run.py: the answer nginx gives in make bench)

ENV = BENCH_KEY
# What wrk sends in make bench, and nginx's answer as the upstream gives it.
REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".encode()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 21:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
) % (len(GATE_BODY.encode()), GATE_BODY.encode())


class Transport:
    """An in-memory transport: keeps what is written, answers what the protocols ask."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def config() -> Any:
    doc = {
        "upstream": {"base_url": "http://127.0.0.1:9"},  # never dialled: one connection given
        "clock": {"sync": False},
        "logging": {"audit": True},
        "keys": [
            {
                "name": "k0",
                "listen": "127.0.0.1:0",
                "source": {"env": {}},
                "policy": "full-trading",
                "canary": {"enabled": False},
            }
        ],
    }
    return parse_config(doc, environ=ENV)


async def measure(n: int, rounds: int, count: int | None) -> dict[str, float]:
    cfg = config()
    setup_logging(cfg.logging.format, cfg.logging.level, audit_sink=True)
    opened: list[tuple[Any, Transport]] = []  # the upstream connections: one, kept alive

    async def written() -> tuple[Any, Transport]:
        for _ in range(10_000):
            if opened and opened[-1][1].written:
                return opened[-1]
            await asyncio.sleep(0)
        raise SystemExit("the sidecar sent nothing upstream")

    async def opener(factory: Any) -> Any:
        conn, transport = factory(), Transport()
        conn.connection_made(transport)
        opened.append((conn, transport))
        return conn

    forwarder = LeanForwarder(cfg.upstream, opener=opener)
    async with running(cfg, environ=ENV, forwarder=forwarder) as sidecar:
        listener = sidecar.keys["k0"].listener
        assert isinstance(listener, LeanListener)
        bot, bot_transport = listener.lean(), Transport()
        bot.connection_made(bot_transport)  # type: ignore[arg-type]

        async def requests(k: int) -> None:
            for _ in range(k):
                bot.data_received(REQUEST)
                upstream, up_transport = opened[-1] if opened else (None, None)
                if up_transport is None or not up_transport.written:
                    # The first request opens the connection, in a Task: until it is written.
                    upstream, up_transport = await written()
                up_transport.written.clear()
                upstream.data_received(ANSWER)
                await asyncio.sleep(0)  # the loop pass: audit line, metrics
            last = bot_transport.written[-1]
            if not last.startswith(b"HTTP/1.1 200 "):
                raise SystemExit(f"the sidecar did not relay the answer: {last[:120]!r}")
            bot_transport.written.clear()

        async def passes(k: int) -> None:
            for _ in range(k):
                await asyncio.sleep(0)

        await ready(sidecar)
        await requests(500)  # warm: caches, the interpreter's specialisation
        if count is not None:
            await requests(count)
            return {}
        per_request = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await passes(n)
            t1 = time.perf_counter()
            await requests(n)
            t2 = time.perf_counter()
            per_request.append(((t2 - t1) - (t1 - t0)) / n * 1e6)
        per_request.sort()
        return {
            "best_us": round(per_request[0], 1),
            "median_us": round(per_request[len(per_request) // 2], 1),
        }


async def ready(sidecar: Any) -> None:
    """Until the key's credentials are loaded (its source runs in a Task)."""
    for _ in range(1000):
        if all(status.ready for status in sidecar.key_statuses()):
            return
        await asyncio.sleep(0.01)
    raise SystemExit("the key never became ready")


def run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def instructions(small: int = 300, large: int = 800) -> int | None:
    """Instructions per request under callgrind (None without valgrind)."""
    if shutil.which("valgrind") is None:
        return None

    def total(k: int) -> int:
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts every run
        out = subprocess.run(
            [
                *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
                *(sys.executable, __file__, "--count", str(k)),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", out.stderr)
        if found is None:
            raise RuntimeError("callgrind printed no total")
        return int(found.group(1))

    return (total(large) - total(small)) // (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="requests per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, help="send this many once, print nothing")
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    args = parser.parse_args()
    if args.instructions:
        print(json.dumps({"instructions_per_request": instructions()}))
        return
    # The audit lines go to stdout: that is /dev/null meanwhile, the result goes to the
    # original stdout (kept as another descriptor).
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    got = run_loop(measure(args.n, args.rounds, args.count))
    if args.count is None:
        os.write(result_fd, (json.dumps(got) + "\n").encode())


if __name__ == "__main__":
    main()
