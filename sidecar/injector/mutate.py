"""The admission decision: whether a pod gets the sidecar, and the JSONPatch that adds it.

Pure functions over the pod as the API server sends it. The pod's own fields are never
overwritten: the patch only adds (an init container, volumes, an env var the container does not
set itself, an fsGroup the pod does not set itself); a volume name the pod already uses is a
conflict and the pod is refused rather than changed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.injector.config import InjectorConfig, Profile
from sidecar.injector.container import (
    NAME,
    SIDECAR_GROUP,
    SidecarSpec,
    container,
    volumes,
)

ANNOTATION_INJECT = "gate-sidecar.io/inject"
ANNOTATION_PROFILE = "gate-sidecar.io/profile"
ANNOTATION_STATUS = "gate-sidecar.io/status"  # set by the injector: "injected"
API_HOST_ENV = "GATE_API_HOST"


class Verdict(enum.Enum):
    NOT_ASKED = "not_asked"  # no inject annotation (or "false"): allowed, no patch
    ALREADY_INJECTED = "already_injected"  # allowed, no patch
    INJECTED = "injected"  # allowed, with the patch
    FORBIDDEN = "forbidden"  # the profile is not for this namespace or service account
    UNKNOWN_PROFILE = "unknown_profile"
    BAD_ANNOTATION = "bad_annotation"
    CONFLICT = "conflict"  # the pod already uses a name the sidecar needs

    @property
    def allowed(self) -> bool:
        return self in (Verdict.NOT_ASKED, Verdict.ALREADY_INJECTED, Verdict.INJECTED)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    patch: list[dict[str, Any]] = field(default_factory=list)
    profile: str | None = None


def _pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer ("/" in an annotation name becomes "~1")."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _matches(allowed: list[str], value: str) -> bool:
    return "*" in allowed or value in allowed


def may_use(profile: Profile, namespace: str, service_account: str) -> str | None:
    """None when the pod may use the profile; else what stops it."""
    if not _matches(profile.allowed.namespaces, namespace):
        return f"namespace {namespace!r}"
    if not _matches(profile.allowed.service_accounts, service_account):
        return f"service account {namespace}/{service_account}"
    return None


def _already_injected(pod: Mapping[str, Any], annotations: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in [*spec.get("initContainers", []), *spec.get("containers", [])]]
    return annotations.get(ANNOTATION_STATUS) == "injected" or NAME in names


def decide(pod: Mapping[str, Any], namespace: str, config: InjectorConfig) -> Decision:
    """The verdict for one pod being created in ``namespace``."""
    metadata = pod.get("metadata") or {}
    annotations: Mapping[str, Any] = metadata.get("annotations") or {}
    asked = annotations.get(ANNOTATION_INJECT)
    if asked is None or asked == "false":
        return Decision(Verdict.NOT_ASKED, "no gate-sidecar.io/inject annotation")
    if asked != "true":
        return Decision(
            Verdict.BAD_ANNOTATION,
            f'{ANNOTATION_INJECT}: {asked!r} is neither "true" nor "false"',
        )
    name = annotations.get(ANNOTATION_PROFILE)
    if not isinstance(name, str) or not name:
        return Decision(Verdict.BAD_ANNOTATION, f"{ANNOTATION_PROFILE}: required with inject")
    if _already_injected(pod, annotations):
        return Decision(Verdict.ALREADY_INJECTED, "the pod already has gate-sidecar", [], name)
    profile = config.profiles.get(name)
    if profile is None:
        return Decision(
            Verdict.UNKNOWN_PROFILE, f"profile {name!r} is not defined in the injector", [], name
        )
    spec = pod.get("spec") or {}
    service_account = spec.get("serviceAccountName") or "default"
    stop = may_use(profile, namespace, service_account)
    if stop is not None:
        return Decision(Verdict.FORBIDDEN, f"profile {name!r} may not be used by {stop}", [], name)
    sidecar = SidecarSpec(
        image=config.image,
        config_configmap=profile.config_configmap,
        image_pull_policy=config.image_pull_policy,
        vault_audience=profile.vault_token.audience,
        vault_token_expiration_s=profile.vault_token.expiration_seconds,
    )
    taken = {v.get("name") for v in spec.get("volumes", [])}
    clash = sorted(v["name"] for v in volumes(sidecar) if v["name"] in taken)
    if clash:
        return Decision(
            Verdict.CONFLICT, f"the pod already has volumes named {', '.join(clash)}", [], name
        )
    patch = _patch(metadata, spec, sidecar, profile.api_host)
    return Decision(Verdict.INJECTED, f"profile {name!r}", patch, name)


def _patch(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], sidecar: SidecarSpec, api_host: str
) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    if metadata.get("annotations") is None:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    status = _pointer("metadata", "annotations", ANNOTATION_STATUS)
    ops.append({"op": "add", "path": status, "value": "injected"})
    # First among the init containers: later ones (and every container) find it ready.
    if spec.get("initContainers"):
        ops.append({"op": "add", "path": "/spec/initContainers/0", "value": container(sidecar)})
    else:
        ops.append({"op": "add", "path": "/spec/initContainers", "value": [container(sidecar)]})
    if spec.get("volumes") is None:
        ops.append({"op": "add", "path": "/spec/volumes", "value": volumes(sidecar)})
    else:
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes(sidecar)]
    env_var = {"name": API_HOST_ENV, "value": api_host}
    for i, bot in enumerate(spec.get("containers", [])):
        env = bot.get("env")
        path = _pointer("spec", "containers", i, "env")
        if env is None:
            ops.append({"op": "add", "path": path, "value": [env_var]})
        elif not any(e.get("name") == API_HOST_ENV for e in env):
            ops.append({"op": "add", "path": path + "/-", "value": env_var})
    security = spec.get("securityContext")
    fs_group = {"fsGroup": SIDECAR_GROUP}
    if security is None:
        ops.append({"op": "add", "path": "/spec/securityContext", "value": fs_group})
    elif "fsGroup" not in security:
        ops.append({"op": "add", "path": "/spec/securityContext/fsGroup", "value": SIDECAR_GROUP})
    return ops
