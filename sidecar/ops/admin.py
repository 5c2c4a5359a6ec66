"""The admin listener: liveness, readiness, metrics and the cancel-only switch. Never on a key's
listener.

:func:`route` is a pure function from a request (method, target, headers) to an answer;
:class:`AdminSite` serves it on the same connection layer as the key listeners
(:class:`~sidecar.proxy.lean_listener.LeanServer`), so the admin listener has the same
``server:`` limits and refusals (deadlines, connection cap, head size and header count, HTTP
versions), each counted by ``refuse`` (:func:`sidecar.ops.listener_metrics.admin_refusals`).
Its answers are not audited: it has no key.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qs, unquote

from sidecar.errors import (
    MethodNotAllowed,
    NotFound,
    SidecarError,
    Unauthenticated,
    error_body,
)
from sidecar.gate.head import DEFAULT_KINDS
from sidecar.ops.status import BrakeSwitch, SidecarView
from sidecar.proxy.admission import TokenFile
from sidecar.proxy.peer import Peer
from sidecar.proxy.pipeline import BotRequest, BotResponse
from sidecar.proxy.record import RequestRecord
from sidecar.proxy.site import Switch

log = logging.getLogger("sidecar.admin")

#: Reports a refusal of the admin listener (sidecar.ops.listener_metrics.admin_refusals).
Refuse = Callable[[SidecarError], None]
#: The metrics, restricted to the samples the ``name[]`` parameters name: (body, content type).
#: :meth:`sidecar.ops.metrics.Metrics.scrape`.
Scrape = Callable[[Mapping[str, list[str]]], tuple[bytes, str]]

JSON_TYPE = ("Content-Type", "application/json; charset=utf-8")
BEARER_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="gate-sidecar metrics"')


class Endpoint(Enum):
    HEALTHZ = "/healthz"
    READYZ = "/readyz"
    METRICS = "/metrics"
    CANCEL_ONLY = "/keys/{name}/cancel-only"


_READ = ("GET", "HEAD")
ALLOWED = {
    Endpoint.HEALTHZ: _READ,
    Endpoint.READYZ: _READ,
    Endpoint.METRICS: _READ,
    Endpoint.CANCEL_ONLY: ("POST", "DELETE"),
}


@dataclass(frozen=True, slots=True)
class Admin:
    """What the routes read and switch; ``metrics_token`` set: /metrics needs it as a bearer."""

    view: SidecarView
    brakes: BrakeSwitch
    scrape: Scrape
    metrics_token: TokenFile | None = None


def readiness(view: SidecarView) -> dict[str, Any]:
    """Ready = every configured key has an open listener and a secret it may sign with.

    ``missing`` lists the key names that are not ready; ``problems`` says why, one line each.
    """
    problems: dict[str, list[str]] = {}
    keys: dict[str, dict[str, object]] = {}
    for key in view.key_statuses():
        if key.url is None:
            problems.setdefault(key.name, []).append(f"listener {key.listen} not open")
            continue
        if key.problem is not None:
            problems.setdefault(key.name, []).append(key.problem)
        keys[key.name] = {"listen": key.url, **key.slot}
        if key.dead_man:  # shown, never a reason to be unready: trading goes on without it
            keys[key.name]["dead_man"] = {
                s.scope: {"armed": s.armed, "fires_in_s": s.fires_in_s, "error": s.error}
                for s in key.dead_man
            }
    return {
        "ready": not problems,
        "missing": sorted(problems),
        "problems": [f"{name}: {p}" for name in sorted(problems) for p in problems[name]],
        "keys": keys,
    }


def match(path: str) -> tuple[Endpoint, str] | None:
    """The endpoint a request path names, with the key name of a cancel-only path ("" else)."""
    for endpoint in (Endpoint.HEALTHZ, Endpoint.READYZ, Endpoint.METRICS):
        if path == endpoint.value:
            return endpoint, ""
    parts = path.split("/")
    if len(parts) == 4 and parts[:2] == ["", "keys"] and parts[3] == "cancel-only" and parts[2]:
        return Endpoint.CANCEL_ONLY, unquote(parts[2])
    return None


def json_answer(body: object, status: int = 200) -> BotResponse:
    return BotResponse(status, [JSON_TYPE], json.dumps(body).encode())


def refusal(exc: SidecarError, *extra: tuple[str, str]) -> BotResponse:
    return BotResponse(exc.status, [JSON_TYPE, *extra], error_body(exc))


def _values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def _bearer_ok(token: TokenFile, headers: list[tuple[str, str]]) -> bool:
    offered = _values(headers, "authorization")
    if len(offered) != 1:  # none, or two: which one would count is not for certain
        return False
    scheme, _, value = offered[0].partition(" ")
    return scheme.lower() == "bearer" and token.matches(value.strip())


def _gzip_accepted(headers: list[tuple[str, str]]) -> bool:
    codings = ",".join(_values(headers, "accept-encoding")).split(",")
    return any(c.split(";")[0].strip().lower() == "gzip" for c in codings)


def metrics(admin: Admin, query: str, headers: list[tuple[str, str]]) -> BotResponse:
    """``GET /metrics``: the text format, gzipped when the scraper accepts it."""
    token = admin.metrics_token
    if token is not None and not _bearer_ok(token, headers):
        exc = Unauthenticated("GET /metrics needs a valid bearer token")
        return refusal(exc, BEARER_CHALLENGE)
    body, content_type = admin.scrape(parse_qs(query))
    answer = [("Content-Type", content_type)]
    if _gzip_accepted(headers):
        body = gzip.compress(body)
        answer.append(("Content-Encoding", "gzip"))
    return BotResponse(200, answer, body)


def cancel_only(admin: Admin, name: str, on: bool) -> BotResponse:
    """``POST`` engages a key's cancel-only brake, ``DELETE`` lifts it."""
    changed = admin.brakes.switch_cancel_only(name, on, "admin")
    if changed is None:
        body = {"label": "SIDECAR_NOT_FOUND", "message": f"no running key named {name[:64]!r}"}
        return json_answer(body, status=404)
    return json_answer({"key": name, "cancel_only": on, "changed": changed})


def route(admin: Admin, method: str, target: str, headers: list[tuple[str, str]]) -> BotResponse:
    """The answer to one admin request."""
    path, _, query = target.partition("?")
    found = match(path)
    if found is None:
        # Names the endpoints rather than quoting the path: an answer echoes nothing a client sent.
        endpoints = ", ".join(e.value for e in Endpoint)
        return refusal(NotFound(f"no admin endpoint at this path (there are {endpoints})"))
    endpoint, name = found
    allowed = ALLOWED[endpoint]
    if method not in allowed:
        exc = MethodNotAllowed(f"{endpoint.value} answers {' and '.join(allowed)} only")
        return refusal(exc, ("Allow", ", ".join(allowed)))
    if endpoint is Endpoint.HEALTHZ:
        return json_answer({"status": "ok"})
    if endpoint is Endpoint.READYZ:
        body = readiness(admin.view)
        return json_answer(body, status=200 if body["ready"] else 503)
    if endpoint is Endpoint.METRICS:
        return metrics(admin, query, headers)
    return cancel_only(admin, name, method == "POST")


class AdminSite:
    """The admin routes as a :class:`~sidecar.proxy.site.Site`: no WebSocket sessions, no client
    token held, no audit line; refusals counted by ``refuse``."""

    name = "admin"
    ws = None
    kinds = DEFAULT_KINDS  # no forward_headers: nothing the admin listener gets goes anywhere

    def __init__(self, admin: Admin, max_body_bytes: int, refuse: Refuse) -> None:
        self.admin = admin
        self.max_body_bytes = max_body_bytes
        self.refuse = refuse

    def hold(
        self, headers: Iterable[tuple[str, str]], revoked: Callable[[], object]
    ) -> Callable[[], None] | None:
        return None

    async def respond(self, request: BotRequest) -> tuple[BotResponse, RequestRecord | None]:
        try:
            response = route(self.admin, request.method, request.target, request.headers)
        except Exception:  # a bug here must not end the connection without an answer
            log.exception("admin request failed")
            response = refusal(SidecarError("internal error in gate-sidecar"))
        return response, None

    def finish(self, record: RequestRecord | None, status: int) -> None:
        return None

    def refused(self, error: SidecarError, method: str, target: str, peer: Peer) -> None:
        try:
            self.refuse(error)
        except Exception:
            log.exception("refusal observer failed")

    async def websocket(self, request: BotRequest, switch: Switch) -> None:
        raise NotFound("the admin listener serves no WebSocket")  # never called: ws is None
