"""The layer contracts in pyproject.toml: they hold today, and each one fails on a breach.

Each breach is made in a copy of the package (never in the checkout) and checked with the same
`lint-imports` and the same contracts that `make test` runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("arch")
    shutil.copytree(
        ROOT / "sidecar", root / "sidecar", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _with_breach(clean: Path, tmp_path: Path, module: str, line: str) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(clean, root)
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")
    return root


def test_the_package_keeps_every_layer_contract(clean_copy: Path) -> None:
    result = _lint(clean_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# (why, module that gets the import, the import, the contract that must break)
BREACHES = [
    (
        "the signer importing the runtime breaks the layers",
        "sidecar.gate.signing",
        "import sidecar.runtime.app  # noqa",
        "Layers: each package imports only the layers below it",
    ),
    (
        "the credentials importing the proxy breaks the layers",
        "sidecar.credentials.slot",
        "from sidecar.proxy import handler  # noqa",
        "Layers: each package imports only the layers below it",
    ),
    (
        "the policy engine importing asyncio breaks its purity",
        "sidecar.policy.engine",
        "import asyncio  # noqa",
        "Gate's wire rules and the policy engine are pure: no I/O or framework library",
    ),
    (
        "Gate's wire rules importing aiohttp break their purity",
        "sidecar.gate.headers",
        "import aiohttp  # noqa",
        "Gate's wire rules and the policy engine are pure: no I/O or framework library",
    ),
    (
        "the test exchange sharing the sidecar's signer breaks its independence",
        "sidecar.devtools.exchange.auth",
        "from sidecar.gate import signing  # noqa",
        "The test exchange verifies signatures on its own: it imports nothing of the sidecar",
    ),
    (
        "the status view importing the admin routes (which import it) is a cycle",
        "sidecar.ops.status",
        "from sidecar.ops import admin  # noqa",
        "No import cycles, at any depth",
    ),
]


@pytest.mark.parametrize(
    ("why", "module", "line", "contract"), BREACHES, ids=[b[0] for b in BREACHES]
)
def test_a_breach_fails_its_contract(
    clean_copy: Path, tmp_path: Path, why: str, module: str, line: str, contract: str
) -> None:
    result = _lint(_with_breach(clean_copy, tmp_path, module, line))
    assert result.returncode != 0, result.stdout
    # lint-imports wraps long contract names (and older releases colour even a pipe): compare
    # with colours dropped and whitespace folded.
    report = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).split())
    assert f"{contract} BROKEN" in report, result.stdout
