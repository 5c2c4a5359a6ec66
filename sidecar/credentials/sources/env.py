"""Credentials from environment variables: loaded once (an environment cannot change under us)."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.base import Source, SourceContext, SourceKind
from sidecar.errors import SourceError
from sidecar.gate.signing import HmacSigner
from sidecar.settings import Strict


class EnvSource(Strict):
    key_var: str = "GATE_KEY"
    secret_var: str = "GATE_SECRET"  # noqa: S105 - a variable name, not a secret


class EnvCredentials(Source):
    kind = "env"

    def __init__(
        self, slot: KeySlot, rotation: Rotation, spec: EnvSource, environ: Mapping[str, str]
    ) -> None:
        super().__init__(slot, rotation)
        self.spec = spec
        self.environ = environ

    async def poll(self) -> None:
        problem = _missing(self.spec, self.environ)
        if problem is not None:
            raise SourceError(problem)
        key, secret = self.environ[self.spec.key_var], self.environ[self.spec.secret_var]
        await self.rotation.offer(self.slot, Credentials(key, HmacSigner(secret), version="env"))


def _missing(spec: EnvSource, environ: Mapping[str, str]) -> str | None:
    """Which variables are unset or empty, or None."""
    missing = [f"${var}" for var in (spec.key_var, spec.secret_var) if not environ.get(var)]
    if len(missing) == 1:
        return f"environment variable {missing[0]} is not set"
    return f"environment variables {' and '.join(missing)} are not set" if missing else None


def _preflight(spec: EnvSource, environ: Mapping[str, str]) -> str | None:
    """Checked before start (SourceKind.preflight): a running process never sees them appear."""
    problem = _missing(spec, environ)
    if problem is None:
        return None
    return f"{problem}: export {'it' if ' is ' in problem else 'them'} before starting"


def _build(spec: EnvSource, slot: KeySlot, rotation: Rotation, ctx: SourceContext) -> Source:
    return EnvCredentials(slot, rotation, spec, ctx.environ)


def _describe(spec: EnvSource) -> str:
    return f"env (key ${spec.key_var}, secret ${spec.secret_var}; read once)"


KIND = SourceKind("env", EnvSource, _build, _describe, preflight=_preflight)
