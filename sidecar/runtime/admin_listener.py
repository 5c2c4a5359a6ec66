"""The admin listener: the admin routes (:mod:`sidecar.ops.admin`) in front of a running sidecar,
on the same connection layer and under the same ``server:`` limits as the key listeners."""

from __future__ import annotations

from sidecar.config.listen import parse_listen
from sidecar.config.models import Config
from sidecar.ops.admin import Admin, AdminSite
from sidecar.ops.listener_metrics import admin_refusals
from sidecar.proxy.admission import TokenFile
from sidecar.runtime.listeners import LeanListener, serve_site
from sidecar.runtime.state import Sidecar


async def open_admin(sidecar: Sidecar, config: Config) -> LeanListener:
    """The admin listener (``admin.listen``) in front of a running sidecar, with the same limits
    as the key listeners; its refusals are counted on the sidecar's metrics
    (``gate_sidecar_admin_refusals``). OSError: it could not open."""
    token = config.admin.metrics_token_file
    admin = Admin(
        view=sidecar,
        brakes=sidecar,
        scrape=sidecar.metrics.scrape,
        metrics_token=None if token is None else TokenFile(token),
    )
    refuse = admin_refusals(sidecar.metrics.registry)
    site = AdminSite(admin, config.server.max_body_bytes, refuse)
    return await serve_site(
        site,
        parse_listen(config.admin.listen),
        shutdown_grace_s=config.server.shutdown_grace_s,
        limits=config.server,
    )
