"""AdmissionReview v1 in and out: reading what the API server sends, answering it.

A review that cannot be read for certain (not JSON, not admission.k8s.io/v1, no request uid, not
a Pod) is a :class:`MalformedReview`; the server answers it HTTP 400 and the API server applies
the webhook's failurePolicy. A pod that may not get the sidecar is answered ``allowed: false``
with a message naming the profile and what stops it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sidecar.injector.config import InjectorConfig
from sidecar.injector.mutate import Decision, decide

API_VERSION = "admission.k8s.io/v1"


class MalformedReview(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    uid: str
    namespace: str
    pod: dict[str, Any]


def parse_review(body: bytes) -> Request:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedReview("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedReview("the body is not a JSON object")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        raise MalformedReview(f"not an {API_VERSION} AdmissionReview")
    request = doc.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("no request in the AdmissionReview")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("request.uid is missing")
    kind = request.get("kind")
    if not isinstance(kind, dict) or (kind.get("group"), kind.get("kind")) != ("", "Pod"):
        raise MalformedReview("request.kind is not a core/v1 Pod")
    if request.get("operation") != "CREATE":
        raise MalformedReview("request.operation is not CREATE")
    pod = request.get("object")
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
        raise MalformedReview("request.object is not a pod with a spec")
    namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise MalformedReview("request.namespace is missing")
    return Request(uid, namespace, pod)


def respond(request: Request, decision: Decision) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": request.uid, "allowed": decision.verdict.allowed}
    if decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(decision.patch).encode()).decode()
    if not decision.verdict.allowed:
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": f"gate-sidecar injector: {decision.reason}",
        }
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def review(body: bytes, config: InjectorConfig) -> tuple[Request, Decision, dict[str, Any]]:
    """Parse, decide, answer (raises :class:`MalformedReview`)."""
    request = parse_review(body)
    decision = decide(request.pod, request.namespace, config)
    return request, decision, respond(request, decision)
