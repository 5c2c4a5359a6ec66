"""The container image without a container engine.

The Dockerfile is parsed with the `dockerfile` package (a wrapper of the official BuildKit parser)
and checked for what the chart relies on; then its build stage is replayed on this machine (the
COPY sources copied into a scratch directory, the RUN step run by sh with the image's paths mapped
into tmp_path) and the installed command is started the way the image starts it.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from tests.sync import eventually_blocking

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
VENV = "/opt/gate-sidecar"  # where the image's venv lives
WHEELS = "/wheels"
CONFIG_PATH = "/etc/gate-sidecar/config.yaml"  # where the chart mounts the config
PINNED_SLIM_PYTHON = re.compile(r"python:3\.\d+\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?")


def _stages() -> list[list[Any]]:
    stages: list[list[Any]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            stages.append([])
        if stages:  # the ARGs before the first FROM belong to no stage (see _base_args)
            stages[-1].append(command)
    return stages


def _base_args() -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            break
        if command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            args[name] = default
    return args


def _only(stage: list[Any], cmd: str) -> Any:
    found = [c for c in stage if c.cmd == cmd]
    assert found, f"no {cmd} in the stage"
    return found[-1]  # the last one wins, as in Docker


def _env(stage: list[Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for command in stage:
        if command.cmd == "ENV":
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def test_the_image_builds_in_two_stages_on_one_pinned_slim_python() -> None:
    build, runtime = _stages()
    assert build[0].value[1:] == ("AS", "build")
    assert build[0].value[0] == "${BASE_IMAGE}"  # make image-test passes another base
    image = _base_args()["BASE_IMAGE"]
    assert PINNED_SLIM_PYTHON.fullmatch(image), image
    # One base for both stages: the venv's interpreter path must exist at run time.
    assert runtime[0].value == ("${BASE_IMAGE}",)


def test_the_runtime_stage_holds_only_the_venv() -> None:
    _, runtime = _stages()
    copies = [c for c in runtime if c.cmd in ("COPY", "ADD")]
    assert [(c.cmd, c.flags, c.value) for c in copies] == [
        ("COPY", ("--from=build",), (VENV, VENV))
    ]
    assert not [c for c in runtime if c.cmd == "RUN"]


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    _, runtime = _stages()
    user = _only(runtime, "USER").value[0]
    assert re.fullmatch(r"\d+:\d+", user), user
    assert all(int(part) != 0 for part in user.split(":"))


def test_the_image_starts_gate_sidecar_serve_in_exec_form() -> None:
    _, runtime = _stages()
    entrypoint, cmd = _only(runtime, "ENTRYPOINT"), _only(runtime, "CMD")
    assert entrypoint.json and entrypoint.value == ("gate-sidecar",)
    assert cmd.json and cmd.value == ("serve", "--config", CONFIG_PATH)


def test_the_image_needs_no_writable_path_outside_tmp() -> None:
    _, runtime = _stages()
    env = _env(runtime)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # bytecode is compiled at build time
    assert env["HOME"] == "/tmp"
    assert env["PATH"].startswith(f"{VENV}/bin:")


def test_the_build_context_holds_only_what_the_build_copies() -> None:
    build, _ = _stages()
    sources = [s.rstrip("/") for c in build if c.cmd == "COPY" for s in c.value[:-1]]
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == set(sources)


def _copy_sources(build: list[Any], dest: Path) -> None:
    for command in build:
        if command.cmd != "COPY":
            continue
        *sources, target = command.value
        for source in sources:
            src = REPO / source
            to = (
                dest / target / src.name
                if target.endswith("/") and src.is_file()
                else dest / target
            )
            if src.is_dir():
                shutil.copytree(src, to, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, to)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except OSError:
        return 0


def test_the_build_step_installs_a_command_that_starts(tmp_path: Path) -> None:
    build, runtime = _stages()
    src = tmp_path / "src"
    src.mkdir()
    _copy_sources(build, src)
    venv, wheels = tmp_path / "venv", tmp_path / "wheels"
    script = _only(build, "RUN").value[0]
    assert VENV in script and WHEELS in script
    script = script.replace(VENV, str(venv)).replace(WHEELS, str(wheels))
    # The build stage's ENV, except that pip may use its cache here (keeps the test fast).
    env = {k: v for k, v in _env(build).items() if k != "PIP_NO_CACHE_DIR"}
    bin_dir = str(Path(sys.executable).parent)  # `pip` and `python` of the repo's .venv
    env = {**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(Path.home())}
    subprocess.run(["sh", "-ec", script], cwd=src, env=env, check=True, timeout=110)

    assert not (venv / "bin" / "pip").exists()  # no pip in the runtime venv
    assert list(venv.glob("lib/python3*/site-packages/sidecar/__pycache__/cli.*.pyc"))
    assert list(venv.glob("lib/python3*/site-packages/uvloop"))  # the [fast] extra

    runtime_env = {**_env(runtime), "PATH": f"{venv}/bin:/usr/bin:/bin"}
    runtime_env = {k: v.replace("$PATH", "/usr/bin:/bin") for k, v in runtime_env.items()}
    runtime_env["HOME"] = str(tmp_path)
    entrypoint = [str(venv / "bin" / _only(runtime, "ENTRYPOINT").value[0])]
    help_text = subprocess.run(
        [*entrypoint, "--help"], env=runtime_env, capture_output=True, text=True, timeout=30
    )
    assert help_text.returncode == 0 and "serve" in help_text.stdout

    admin = _free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""upstream: {{base_url: "http://127.0.0.1:9"}}
admin: {{listen: "127.0.0.1:{admin}"}}
clock: {{sync: false}}
keys:
  - name: bot
    listen: 127.0.0.1:0
    policy: read-only
    source: {{env: {{}}}}
"""
    )
    cmd = [a.replace(CONFIG_PATH, str(config)) for a in _only(runtime, "CMD").value]
    key_env = {**runtime_env, "GATE_KEY": "test-key", "GATE_SECRET": "test-secret"}
    check = subprocess.run(
        [*entrypoint, "check-config", *cmd[1:]], env=key_env, capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stderr

    process = subprocess.Popen(
        [*entrypoint, *cmd],
        env=key_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                errors = process.stderr.read() if process.stderr else b""
                pytest.fail(f"serve exited before it was ready: {errors!r}")
            return _get(f"http://127.0.0.1:{admin}/readyz") == 200

        eventually_blocking(ready, 20, "serve ready", step=0.1)
        assert _get(f"http://127.0.0.1:{admin}/healthz") == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
