"""``gate-sidecar injector``: the webhook over HTTPS (``POST /mutate``, ``GET /healthz``).

With ``tls.self_managed`` the certificate is made (and its CA published) before the listener
opens, then checked every ``check_interval_s`` and renewed in place: the listener's SSL context
loads the new files, so new connections get the new certificate without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.injector.config import InjectorConfig
from sidecar.injector.kube import InClusterClient, KubeError, WebhookClient
from sidecar.injector.review import MalformedReview, review
from sidecar.injector.rotation import CertRotator
from sidecar.ops.logs import setup_logging
from sidecar.tls import server_tls_context

log = logging.getLogger("sidecar.injector")
MAX_REVIEW_BYTES = 4 * 1024 * 1024  # the API server's own limit on an object is ~3 MiB
CONFIG = web.AppKey("injector_config", InjectorConfig)


async def mutate(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return web.json_response({"error": "Content-Type must be application/json"}, status=415)
    body = await request.read()
    try:
        req, decision, answer = review(body, request.app[CONFIG])
    except MalformedReview as exc:
        log.warning("malformed admission review", extra={"error": str(exc)})
        return web.json_response({"error": f"malformed AdmissionReview: {exc}"}, status=400)
    pod_meta = req.pod.get("metadata") or {}
    log.info(
        "admission",
        extra={
            "namespace": req.namespace,
            "pod": pod_meta.get("name") or pod_meta.get("generateName") or "",
            "profile": decision.profile or "",
            "verdict": decision.verdict.value,
            "reason": decision.reason,
        },
    )
    return web.json_response(answer)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def create_injector_app(config: InjectorConfig) -> web.Application:
    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app[CONFIG] = config
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    return app


async def _keep_renewing(rotator: CertRotator, ctx: ssl.SSLContext, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            if await asyncio.to_thread(rotator.ensure):
                ctx.load_cert_chain(str(rotator.cert_file), str(rotator.key_file))
        except Exception as exc:  # keep serving the current certificate; retry next round
            log.error("certificate renewal failed", extra={"error": str(exc)})


@contextlib.asynccontextmanager
async def injector_running(
    config: InjectorConfig, client: WebhookClient | None = None
) -> AsyncIterator[web.AppRunner]:
    """The webhook listening on ``config.listen`` until the block ends."""
    tls = config.tls
    renewer: asyncio.Task[None] | None = None
    if tls.self_managed is not None:
        rotator = CertRotator(tls.self_managed, client or InClusterClient())
        await asyncio.to_thread(rotator.ensure)
        ctx = server_tls_context(rotator.cert_file, rotator.key_file)
        renewer = asyncio.create_task(
            _keep_renewing(rotator, ctx, tls.self_managed.check_interval_s)
        )
    else:
        assert tls.cert_file is not None and tls.key_file is not None  # the model says so
        ctx = server_tls_context(tls.cert_file, tls.key_file)
    runner = web.AppRunner(create_injector_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        host, port = config.host_port
        await web.TCPSite(runner, host, port, ssl_context=ctx).start()
        log.info("injector listening", extra={"listen": config.listen})
        yield runner
    finally:
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        await runner.cleanup()


async def run_injector(config: InjectorConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with injector_running(config):
        await stop.wait()


def serve_injector(config: InjectorConfig) -> int:
    setup_logging("json", "info")
    try:
        asyncio.run(run_injector(config))
    except (OSError, ssl.SSLError, KubeError) as exc:
        log.error("injector cannot start", extra={"error": str(exc)})
        return 1
    return 0
