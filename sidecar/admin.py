"""The admin listener: liveness, readiness (and metrics). Never on a key's listener."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from sidecar.app import Sidecar


def _sidecar(request: web.Request) -> Sidecar:
    from sidecar.app import SIDECAR

    return request.app[SIDECAR]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    sidecar = _sidecar(request)
    keys = {name: handle.runtime.slot.status() for name, handle in sidecar.keys.items()}
    missing = sorted(
        {k.name for k in sidecar.config.keys} - set(sidecar.keys)
        | {name for name, st in keys.items() if not st["ready"]}
    )
    body = {"ready": not missing, "missing": missing, "keys": keys}
    return web.json_response(body, status=200 if not missing else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
