"""Builds the running sidecar from a config: one factory for `serve`, the demo and the tests.

:func:`create_app` returns the admin application. Its ``cleanup_ctx`` owns every long-lived
resource (the forwarder, the Vault session, clock sync, each key's slot, source task and
listener) through one :class:`~sidecar.runtime.state.Sidecar`. Running the admin app (an
``AppRunner``) therefore runs the whole sidecar.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from sidecar.config.models import Config
from sidecar.ops import admin
from sidecar.ops.listener_metrics import admin_refusals
from sidecar.proxy.admission import TokenFile
from sidecar.proxy.forwarder import Forwarder
from sidecar.proxy.lean_forwarder import LeanForwarder
from sidecar.runtime.state import Sidecar

SIDECAR = web.AppKey("sidecar", Sidecar)


def create_app(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    forwarder: Forwarder | None = None,
) -> web.Application:
    """The admin app running ``config``.

    ``forwarder`` replaces the lean forwarder to Gate (tests pass a double); the
    sidecar closes it on shutdown either way.
    """
    app = web.Application(middlewares=[admin.head_checks(config.server.max_header_bytes)])
    admin.add_routes(app)

    async def sidecar_ctx(app: web.Application) -> AsyncIterator[None]:
        sidecar = Sidecar(
            config,
            os.environ if environ is None else environ,
            LeanForwarder(config.upstream) if forwarder is None else forwarder,
        )
        app[SIDECAR] = sidecar
        app[admin.VIEW] = sidecar
        app[admin.BRAKES] = sidecar
        app[admin.METRICS] = sidecar.metrics
        app[admin.REFUSE] = admin_refusals(sidecar.metrics.registry)
        if config.admin.metrics_token_file is not None:
            app[admin.METRICS_TOKEN] = TokenFile(config.admin.metrics_token_file)
        try:
            await sidecar.start()
            yield
        finally:
            await sidecar.close()

    app.cleanup_ctx.append(sidecar_ctx)
    return app
