"""The admin listener: liveness, readiness, metrics and the cancel-only switch. Never on a key's
listener."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sidecar.ops.metrics import Metrics
from sidecar.ops.status import BrakeSwitch, SidecarView

VIEW = web.AppKey("sidecar_view", SidecarView)
BRAKES = web.AppKey("brake_switch", BrakeSwitch)
METRICS = web.AppKey("metrics", Metrics)


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


async def metrics(request: web.Request) -> web.StreamResponse:
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


def add_routes(app: web.Application) -> None:
    """The admin routes; the app must hold :data:`VIEW`, :data:`BRAKES` and :data:`METRICS`
    before serving."""
    app.router.add_post("/keys/{name}/cancel-only", cancel_only)
    app.router.add_delete("/keys/{name}/cancel-only", cancel_only)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
