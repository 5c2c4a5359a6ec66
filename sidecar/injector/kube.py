"""The one thing the injector asks of the Kubernetes API: publish its CA in the webhook's
``caBundle``. :class:`WebhookClient` is the seam (tests use a double holding the object);
:class:`InClusterClient` talks to the API server with the pod's service-account token.
Blocking (requests): callers run it in a thread, never on the event loop.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Protocol

import requests

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


class KubeError(Exception):
    pass


class ConflictError(KubeError):
    """The object changed between reading and patching it (a ``test`` op failed)."""


class WebhookClient(Protocol):
    def get_webhook(self, name: str) -> dict[str, Any]: ...

    def patch_webhook(self, name: str, patch: list[dict[str, Any]]) -> None: ...


def ca_bundle_patch(webhook: dict[str, Any], bundle: bytes) -> list[dict[str, Any]]:
    """A JSONPatch setting every webhook's caBundle, guarded by the object's resourceVersion
    (two replicas publishing at once: one of them retries on the fresh object)."""
    encoded = base64.b64encode(bundle).decode()
    ops: list[dict[str, Any]] = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": webhook["metadata"].get("resourceVersion", ""),
        }
    ]
    for i, _ in enumerate(webhook.get("webhooks", [])):
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded})
    return ops


def current_bundle(webhook: dict[str, Any]) -> bytes:
    hooks = webhook.get("webhooks") or [{}]
    encoded = (hooks[0].get("clientConfig") or {}).get("caBundle") or ""
    try:
        return base64.b64decode(encoded)
    except ValueError:
        return b""


class InClusterClient:
    """The API server at kubernetes.default.svc, as the pod's service account."""

    def __init__(self, base_url: str = "https://kubernetes.default.svc", timeout_s: float = 10):
        self.base_url = base_url
        self.timeout_s = timeout_s

    def _headers(self) -> dict[str, str]:
        try:
            token = (SERVICE_ACCOUNT / "token").read_text().strip()  # re-read: it is rotated
        except OSError as exc:
            raise KubeError(f"no service-account token: {exc}") from None
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _call(self, method: str, name: str, **kwargs: Any) -> requests.Response:
        try:
            return requests.request(
                method,
                f"{self.base_url}{WEBHOOKS}/{name}",
                verify=str(SERVICE_ACCOUNT / "ca.crt"),
                timeout=self.timeout_s,
                **kwargs,
            )
        except (OSError, requests.RequestException) as exc:
            raise KubeError(f"{method} mutatingwebhookconfiguration {name}: {exc}") from None

    def get_webhook(self, name: str) -> dict[str, Any]:
        resp = self._call("GET", name, headers=self._headers())
        if resp.status_code != 200:
            raise KubeError(f"GET mutatingwebhookconfiguration {name}: HTTP {resp.status_code}")
        doc: dict[str, Any] = resp.json()
        return doc

    def patch_webhook(self, name: str, patch: list[dict[str, Any]]) -> None:
        headers = {**self._headers(), "Content-Type": "application/json-patch+json"}
        resp = self._call("PATCH", name, data=json.dumps(patch), headers=headers)
        if resp.status_code in (409, 422):
            raise ConflictError(f"PATCH mutatingwebhookconfiguration {name}: changed meanwhile")
        if resp.status_code != 200:
            raise KubeError(f"PATCH mutatingwebhookconfiguration {name}: HTTP {resp.status_code}")
