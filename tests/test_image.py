"""The container image, built and run with podman (``make image-test``; marker ``image``).

The Dockerfile is built as it is, on its default base when that can be pulled, else on a Debian
bookworm base with Debian's Python made here with mmdebstrap (no Docker Hub on this project's
machines) and passed as ``BASE_IMAGE``. The image then runs ``--read-only`` as its own non-root
user on the host's loopback (``--network host``: the test exchange listens on 127.0.0.1),
answers ``/readyz``, signs one request the exchange verifies, and stops within its drain time.

``make image-test`` installs podman, runc and mmdebstrap when missing, writes the containers.conf
podman needs on these machines (runc, cgroupfs, ulimits under the host's) and names it in
``CONTAINERS_CONF``, and passes the build's flags in ``IMAGE_BUILD_FLAGS`` (the host's CA bundle,
for a TLS-inspecting proxy). The figures (build time, image size) are printed and written to
``.cache/image/figures.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures_exchange import RunningExchange
from tests.sync import eventually

pytestmark = [pytest.mark.image, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "image"
DEFAULT_BASE = "docker.io/library/python:3.12.11-slim-bookworm"
IMAGE = "localhost/gate-sidecar:image-test"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Debian's Python and what the sidecar needs at run time (CA certificates for Gate and Vault);
# python3-venv lets the build stage make its throwaway pip. Docs, manuals and translations are
# left out of the base.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Merged /usr made by mmdebstrap's hook rather than the usrmerge package, which would bring all
# of perl (about 50 MB) into the image.
BASE_HOOKS = ("/usr/share/mmdebstrap/hooks/merged-usr",)
BASE_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
DRAIN_S = 10.0  # server.shutdown_grace_s's default
UID = 10001


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def tools() -> None:
    missing = [t for t in ("podman", "runc", "mmdebstrap") if not shutil.which(t)]
    if missing:
        pytest.fail(
            f"missing {missing}: apt-get install podman runc mmdebstrap (make image-test does)"
        )
    if not os.environ.get("CONTAINERS_CONF"):
        pytest.fail("CONTAINERS_CONF is not set: run `make image-test`, which writes it")


def debian_base() -> str:
    """A bookworm base with Debian's Python, made once and kept (podman storage and a tarball)."""
    recipe = json.dumps([SUITE, MIRROR, BASE_PACKAGES, BASE_HOOKS, BASE_EXCLUDES]).encode()
    tag = f"localhost/gate-sidecar-base:{SUITE}-{hashlib.sha256(recipe).hexdigest()[:12]}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{tag.rsplit(':', 1)[1]}.tar"
    if not tarball.exists():
        partial = tarball.with_suffix(".partial")
        excludes = [f"--dpkgopt=path-exclude={p}" for p in BASE_EXCLUDES]
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=essential",
                f"--include={','.join(BASE_PACKAGES)}",
                *(f"--hook-dir={hook}" for hook in BASE_HOOKS),
                *excludes,
                "--dpkgopt=path-include=/usr/share/locale/locale.alias",
                # No apt lists or caches in the image.
                '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/*',
                "--format=tar",
                SUITE,
                str(partial),
                MIRROR,
            ],
            check=True,
            timeout=900,
        )
        partial.rename(tarball)
    podman("import", str(tarball), tag)
    return tag


def base_image() -> str:
    """The Dockerfile's default base when it can be pulled, else the Debian one."""
    if podman("image", "exists", DEFAULT_BASE, check=False).returncode == 0:
        return DEFAULT_BASE
    if podman("pull", "--quiet", DEFAULT_BASE, timeout=120, check=False).returncode == 0:
        return DEFAULT_BASE
    return debian_base()


@pytest.fixture(scope="module")
def image(tools: None) -> str:
    started = time.monotonic()
    base = base_image()
    based = time.monotonic()
    flags = shlex.split(os.environ.get("IMAGE_BUILD_FLAGS", ""))
    podman(
        "build",
        "--pull=never",
        "--build-arg",
        f"BASE_IMAGE={base}",
        *flags,
        "--tag",
        IMAGE,
        str(REPO),
        timeout=900,
    )
    built = time.monotonic()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    base_size = int(podman("image", "inspect", "--format", "{{.Size}}", base).stdout.strip())
    figures = {
        "base": base,
        "base_s": round(based - started, 1),
        "build_s": round(built - based, 1),
        "image_mb": round(size / 1e6, 1),
        "base_mb": round(base_size / 1e6, 1),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nimage figures: {figures}")
    return IMAGE


def run_python(image: str, code: str) -> str:
    result = podman(
        "run",
        "--rm",
        "--read-only",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        image,
        "-c",
        code,
    )
    return result.stdout.strip()


def test_the_final_stage_holds_no_pip_build_tools_or_caches(image: str) -> None:
    found = json.loads(
        run_python(
            image,
            "import json, shutil, glob, os; print(json.dumps({"
            "'tools': [t for t in ('pip', 'pip3', 'gcc', 'cc', 'make', 'apt-get')"
            " if shutil.which(t)],"
            "'venv_pip': glob.glob('/opt/gate-sidecar/lib/python3*/site-packages/pip'),"
            "'wheels': os.path.exists('/wheels'),"
            "'caches': [p for p in ('/root/.cache', '/tmp/.cache', '/var/cache/apt/archives')"
            " if os.path.isdir(p) and os.listdir(p)],"
            "'uid': os.getuid()}))",
        )
    )
    assert found["tools"] == [] or found["tools"] == ["pip", "pip3"]  # the python:slim base's own
    assert found["venv_pip"] == [] and found["wheels"] is False and found["caches"] == []
    assert found["uid"] == UID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def test_the_image_runs_read_only_as_non_root_signs_and_stops_within_its_drain_time(
    image: str, exchange: RunningExchange, tmp_path: Path
) -> None:
    api_key, secret = exchange.new_key()
    admin, listen = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""upstream: {{base_url: "{exchange.url}"}}
admin: {{listen: "127.0.0.1:{admin}"}}
clock: {{sync: false}}
server: {{shutdown_grace_s: {DRAIN_S}}}
keys:
  - name: bot
    listen: 127.0.0.1:{listen}
    policy: read-only
    source: {{env: {{}}}}
"""
    )
    config.chmod(0o644)
    name = f"gate-sidecar-image-test-{os.getpid()}"
    env_file = tmp_path / "env"
    env_file.write_text(f"GATE_KEY={api_key}\nGATE_SECRET={secret}\n")  # not on the command line
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--network",
        "host",
        "--env-file",
        str(env_file),
        "--volume",
        f"{config}:/etc/gate-sidecar/config.yaml:ro",
        image,
    )
    try:
        inspect = json.loads(podman("inspect", name).stdout)[0]
        assert inspect["Config"]["User"] == f"{UID}:{UID}"
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                state = json.loads(podman("inspect", name).stdout)[0]["State"]
                if not state["Running"]:
                    logs = podman("logs", name, check=False)
                    pytest.fail(f"the container stopped:\n{logs.stdout}{logs.stderr}")
                return await status_of(http, f"http://127.0.0.1:{admin}/readyz") == 200

            await eventually(ready, 60, "the container ready", step=0.2)
            async with http.get(f"http://127.0.0.1:{listen}/api/v4/spot/accounts") as resp:
                assert resp.status == 200, await resp.text()
        assert [r.raw_path for r in exchange.state.verified(api_key)] == ["/api/v4/spot/accounts"]
        uid = podman("exec", name, "python3", "-c", "import os; print(os.getuid(), os.getgid())")
        assert uid.stdout.split() == [str(UID), str(UID)]
        started = time.monotonic()
        podman("stop", "--time", str(int(DRAIN_S) + 5), name, timeout=60)
        stopped = time.monotonic() - started
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, podman("logs", name, check=False).stderr
        assert stopped < DRAIN_S, f"took {stopped:.1f}s to stop"
        print(f"\nstopped in {stopped:.2f}s (drain time {DRAIN_S}s)")
    finally:
        podman("rm", "--force", name, check=False)
