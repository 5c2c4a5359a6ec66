"""`gate-sidecar serve` refusing to start, in words that name the setting to change.

An env source's unset variable stops serve at once (exit 2) instead of retrying forever; a port
already taken names the listener (admin or key) and its setting (``admin.listen``,
``keys[N].listen``). Run as the command a person runs, in a subprocess.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

KEY = {
    "name": "spot-reader",
    "listen": "127.0.0.1:0",
    "source": {"env": {"key_var": "GATE_KEY", "secret_var": "GATE_SECRET"}},
    "policy": "read-only",
}


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _serve(tmp_path: Path, config: dict[str, object], **env: str) -> tuple[int, str, float]:
    path = tmp_path / "sidecar.yaml"
    path.write_text(
        yaml.safe_dump({"clock": {"sync": False}, "logging": {"format": "text"}, **config})
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("GATE_KEY", "GATE_SECRET")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def test_serve_stops_at_once_when_an_env_sources_variable_is_unset(tmp_path: Path) -> None:
    code, out, took = _serve(
        tmp_path, {"admin": {"listen": "127.0.0.1:0"}, "keys": [KEY]}, GATE_KEY="k"
    )
    assert code == 2, out
    assert out.strip() == (
        "config error: keys[0].source.env (key 'spot-reader'): environment variable "
        "$GATE_SECRET is not set: export it before starting"
    )
    assert took < 30


def test_a_taken_admin_port_names_the_admin_listener_and_its_setting(
    tmp_path: Path, taken_port: int
) -> None:
    admin = f"127.0.0.1:{taken_port}"
    code, out, _ = _serve(
        tmp_path, {"admin": {"listen": admin}, "keys": [KEY]}, GATE_KEY="k", GATE_SECRET="s"
    )
    assert code == 1, out
    assert (
        f"the admin listener cannot listen on {admin}: Address already in use; "
        "change admin.listen or stop what holds it"
    ) in out
    assert "Traceback" not in out


def test_a_taken_key_port_names_the_key_and_its_setting(tmp_path: Path, taken_port: int) -> None:
    listen = f"127.0.0.1:{taken_port}"
    other = {**KEY, "name": "futures-bot", "listen": "127.0.0.1:0"}
    code, out, _ = _serve(
        tmp_path,
        {"admin": {"listen": "127.0.0.1:0"}, "keys": [other, {**KEY, "listen": listen}]},
        GATE_KEY="k",
        GATE_SECRET="s",
    )
    assert code == 1, out
    assert (
        f"the listener of key 'spot-reader' cannot listen on {listen}: Address already in use; "
        "change keys[1].listen or stop what holds it"
    ) in out
    assert "Traceback" not in out
