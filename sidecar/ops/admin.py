"""The admin listener: liveness, readiness and metrics. Never on a key's listener."""

from __future__ import annotations

from typing import Any

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.typedefs import Handler

from sidecar.errors import SidecarError, Unauthenticated, VersionNotSupported, error_body
from sidecar.ops.metrics import Metrics
from sidecar.ops.status import SidecarView
from sidecar.proxy.admission import TokenFile

VIEW = web.AppKey("sidecar_view", SidecarView)
METRICS = web.AppKey("metrics", Metrics)
METRICS_TOKEN = web.AppKey("metrics_token", TokenFile)


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


@web.middleware
async def http_1_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP/0.9 and HTTP/2.0 request lines get 505, as on the key listeners."""
    if request.version not in (HttpVersion10, HttpVersion11):
        response = _refusal(VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served"))
        response.force_close()
        return response
    return await handler(request)


def add_routes(app: web.Application) -> None:
    """The admin routes; the app must hold :data:`VIEW` and :data:`METRICS` before serving
    (and :data:`METRICS_TOKEN` when ``admin.metrics_token_file`` is set)."""
    app.middlewares.append(http_1_only)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
