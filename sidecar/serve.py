"""Running the sidecar as a process: logging, the admin listener, signals."""

from __future__ import annotations

from aiohttp import web

from sidecar.app import create_app
from sidecar.config import Config
from sidecar.listen import parse_listen
from sidecar.logs import setup_logging


def serve(config: Config, config_path: str) -> int:
    setup_logging(config.logging.format, config.logging.level)
    app = create_app(config)
    admin = parse_listen(config.admin.listen)
    # run_app turns SIGINT/SIGTERM into a graceful shutdown: stop accepting, let in-flight
    # requests finish for up to shutdown_grace_s, then run the cleanup contexts.
    web.run_app(
        app,
        host=admin.host,
        port=admin.port,
        path=admin.path,
        shutdown_timeout=config.server.shutdown_grace_s,
        access_log=None,
        print=None,
    )
    return 0
