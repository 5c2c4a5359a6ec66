"""The admin listener: liveness, readiness and metrics. Never on a key's listener."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from sidecar.errors import KeyUnavailable

if TYPE_CHECKING:
    from sidecar.runtime.app import Sidecar


def _sidecar(request: web.Request) -> Sidecar:
    from sidecar.runtime.app import SIDECAR

    return request.app[SIDECAR]


def readiness(sidecar: Sidecar) -> dict[str, Any]:
    """Ready = every configured key has an open listener and a secret it may sign with.

    ``missing`` lists the key names that are not ready; ``problems`` says why, one line each.
    """
    problems: dict[str, list[str]] = {}
    keys: dict[str, dict[str, object]] = {}
    for key in sidecar.config.keys:
        handle = sidecar.keys.get(key.name)
        if handle is None or not handle.runner.sites:
            problems.setdefault(key.name, []).append(f"listener {key.listen} not open")
            continue
        slot = handle.runtime.slot
        try:
            slot.current()
        except KeyUnavailable as exc:  # messages name keys and reasons, never secrets
            problems.setdefault(key.name, []).append(exc.message)
        keys[key.name] = {"listen": handle.url, **slot.status()}
    return {
        "ready": not problems,
        "missing": sorted(problems),
        "problems": [f"{name}: {p}" for name in sorted(problems) for p in problems[name]],
        "keys": keys,
    }


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    body = readiness(_sidecar(request))
    return web.json_response(body, status=200 if body["ready"] else 503)


async def metrics(request: web.Request) -> web.StreamResponse:
    return await _sidecar(request).metrics.respond(request)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
