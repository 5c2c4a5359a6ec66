"""The admin listener: liveness, readiness, metrics and the cancel-only switch. Never on a key's
listener."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.typedefs import Handler, Middleware

from sidecar.errors import (
    HeadersTooLarge,
    SidecarError,
    Unauthenticated,
    VersionNotSupported,
    error_body,
)
from sidecar.ops.metrics import Metrics
from sidecar.ops.status import BrakeSwitch, SidecarView
from sidecar.proxy.admission import TokenFile

VIEW = web.AppKey("sidecar_view", SidecarView)
BRAKES = web.AppKey("brake_switch", BrakeSwitch)
METRICS = web.AppKey("metrics", Metrics)
METRICS_TOKEN = web.AppKey("metrics_token", TokenFile)
Refuse = Callable[[SidecarError], None]
#: Reports a refusal of the admin listener (sidecar.ops.listener_metrics.admin_refusals).
REFUSE: web.AppKey[Refuse] = web.AppKey("admin_refuse")


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


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    body = readiness(request.app[VIEW])
    return web.json_response(body, status=200 if body["ready"] else 503)


def _refusal(exc: SidecarError) -> web.Response:
    return web.Response(status=exc.status, body=error_body(exc), content_type="application/json")


async def metrics(request: web.Request) -> web.StreamResponse:
    token = request.app.get(METRICS_TOKEN)
    if token is not None:
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.matches(offered.strip()):
            response = _refusal(Unauthenticated("GET /metrics needs a valid bearer token"))
            response.headers["WWW-Authenticate"] = 'Bearer realm="gate-sidecar metrics"'
            return response
    return await request.app[METRICS].respond(request)


async def cancel_only(request: web.Request) -> web.Response:
    """``POST`` engages a key's cancel-only brake, ``DELETE`` lifts it."""
    name = request.match_info["name"]
    on = request.method == "POST"
    changed = request.app[BRAKES].switch_cancel_only(name, on, "admin")
    if changed is None:
        body = {"label": "SIDECAR_NOT_FOUND", "message": f"no running key named {name[:64]!r}"}
        return web.json_response(body, status=404)
    return web.json_response({"key": name, "cancel_only": on, "changed": changed})


def head_refusal(request: web.BaseRequest, max_header_bytes: int) -> SidecarError | None:
    """A request line that is not HTTP/1.x (505), or a whole head over ``max_header_bytes``
    that arrived at once (431), as the key listeners refuse them."""
    if request.version not in (HttpVersion10, HttpVersion11):
        return VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served")
    size = len(request.method) + len(request.raw_path) + 11
    size += sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
    if size > max_header_bytes:
        return HeadersTooLarge(f"the request head exceeds {max_header_bytes} bytes")
    return None


def head_checks(max_header_bytes: int) -> Middleware:
    """The key listeners' request-line and head-size refusals (505, 431), on the admin app."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = head_refusal(request, max_header_bytes)
        if refusal is None:
            return await handler(request)
        refuse = request.app.get(REFUSE)
        if refuse is not None:
            refuse(refusal)
        response = _refusal(refusal)
        response.force_close()
        return response

    return middleware


def add_routes(app: web.Application) -> None:
    """The admin routes; the app must hold :data:`VIEW`, :data:`BRAKES` and :data:`METRICS`
    before serving (and :data:`METRICS_TOKEN` when ``admin.metrics_token_file`` is set)."""
    app.router.add_post("/keys/{name}/cancel-only", cancel_only)
    app.router.add_delete("/keys/{name}/cancel-only", cancel_only)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
