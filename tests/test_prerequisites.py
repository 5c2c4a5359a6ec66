"""`make test`'s prerequisites (tests/prerequisites.py): installed with apt-get where it may, else
one message naming every missing tool, in seconds. A fake apt-get stands in for Debian's: it
"installs" a package by writing a stand-in command into the PATH the check searches."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests import prerequisites

PACKAGES = {  # what the fake apt-get writes for each package: the command and its version line
    "nodejs": ("node", "echo v20.11.0"),
    "npm": ("npm", "echo 10.2.4"),
    "default-jdk-headless": ("java", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2"),
    "curl": ("curl", "echo curl 7.88.1"),
    "prometheus": ("promtool", "echo promtool, version 2.42.0"),
}


def _fake_apt(bin_dir: Path, stubs: Path, log: Path) -> None:
    """An apt-get that logs its arguments and "installs" a package by copying its stub command."""
    stubs.mkdir()
    for package, (command, line) in PACKAGES.items():
        (stubs / package).write_text(f"#!/bin/sh\n{line}\n")
        (stubs / package).chmod(0o755)
        (stubs / f"{package}.command").write_text(command)
    script = bin_dir / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        '[ "$1" = install ] || exit 0\n'
        'for pkg in "$@"; do\n'
        f'  if [ -f "{stubs}/$pkg" ]; then\n'
        f'    /bin/cp "{stubs}/$pkg" "{bin_dir}/$(/bin/cat "{stubs}/$pkg.command")"\n'
        "  fi\n"
        "done\n"
    )
    script.chmod(0o755)


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH without node, npm, java, curl and promtool; no network check (tests stay on
    loopback)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("SIDECAR_NO_INSTALL", raising=False)
    monkeypatch.setattr(prerequisites, "REGISTRIES", ())
    return bin_dir


def test_where_it_may_not_install_it_names_every_missing_tool_within_seconds(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIDECAR_NO_INSTALL", "1")
    started = time.monotonic()
    assert prerequisites.main(["--install"]) == 1
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "make test cannot run the whole suite on this machine:",
        "  - node is not on PATH: install Node.js 18+ (Debian: apt-get install nodejs)",
        "  - npm is not on PATH: install npm (Node.js's package manager) "
        "(Debian: apt-get install npm)",
        "  - java is not on PATH: install a JDK 11+ (java runs a source file) "
        "(Debian: apt-get install default-jdk-headless)",
        "  - curl is not on PATH: install curl (Debian: apt-get install curl)",
        "  - promtool is not on PATH: install Prometheus (promtool and the server) "
        "(Debian: apt-get install prometheus)",
        "  (not installed automatically: SIDECAR_NO_INSTALL=1 is set)",
        "make test-fast runs the tests that need none of these.",
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="apt-get runs only as root")
def test_where_it_may_it_installs_the_missing_tools_then_passes(
    bare_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "apt.log"
    _fake_apt(bare_path, tmp_path / "stubs", log)
    assert prerequisites.main(["--install"]) == 0, capsys.readouterr().err
    calls = log.read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1:] == [
        f"install -y -qq {pkg}"
        for pkg in ("nodejs", "npm", "default-jdk-headless", "curl", "prometheus")
    ]


def test_an_old_node_is_named_with_the_version_it_needs(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIDECAR_NO_INSTALL", "1")
    node = bare_path / "node"
    node.write_text("#!/bin/sh\necho v16.20.0\n")
    node.chmod(0o755)
    assert prerequisites.main([]) == 1
    assert "  - node is version 16, the tests need 18+" in capsys.readouterr().err
