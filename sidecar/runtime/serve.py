"""Running the sidecar as a process: logging, the admin listener, signals.

- SIGTERM / SIGINT: every listener stops accepting, in-flight requests get up to
  ``server.shutdown_grace_s`` to finish, then the process exits 0 (Kubernetes sends SIGTERM on
  every rollout; a bot's order in flight must not be cut off).
- SIGHUP: reload the config file (``sidecar.runtime.reload``) and refresh every key's secret at
  once.
- SIGUSR1: the emergency brake: every key to cancel-only (lifted per key on the admin listener,
  ``DELETE /keys/{name}/cancel-only``). Never a toggle: a second signal keeps the brake on.

The event loop is uvloop's when it is installed (``pip install 'gate-sidecar[fast]'``) and
``server.event_loop`` is ``auto`` (the default) or ``uvloop``; ``asyncio`` keeps the standard loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import signal
from collections.abc import Callable

from sidecar.config.models import Config
from sidecar.ops.logs import AUDIT_SINK, setup_logging
from sidecar.runtime.admin_listener import open_admin
from sidecar.runtime.app import running
from sidecar.runtime.bind import ListenerUnavailable, start_problem
from sidecar.runtime.listeners import LeanListener
from sidecar.runtime.reload import Reloader
from sidecar.runtime.sites import raise_fd_limit
from sidecar.runtime.state import Sidecar

log = logging.getLogger("sidecar.serve")


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str) -> tuple[str, LoopFactory | None]:
    """The event loop ``server.event_loop`` asks for: (its name, a factory or None for asyncio's).

    Raises RuntimeError when ``uvloop`` is asked for and is not installed.
    """
    if choice != "asyncio" and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return "uvloop", uvloop.new_event_loop
    if choice == "uvloop":
        raise RuntimeError(
            "server.event_loop: uvloop is not installed (pip install 'gate-sidecar[fast]')"
        )
    return "asyncio", None


def serve(config: Config, config_path: str) -> int:
    setup_logging(config.logging.format, config.logging.level, audit_sink=True)
    try:
        name, factory = loop_factory(config.server.event_loop)
    except RuntimeError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1
    log.info("event loop", extra={"loop": name})
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_serve(config, config_path))


async def _serve(config: Config, config_path: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloader: Reloader | None = None
    reloads: set[asyncio.Task[bool]] = set()

    def on_usr1() -> None:
        if reloader is None:
            log.warning("SIGUSR1 during start-up: braking once the keys are up")
            brake_at_start.set()
            return
        reloader.sidecar.brake_all("SIGUSR1")

    brake_at_start = asyncio.Event()

    def on_stop() -> None:
        AUDIT_SINK.flush()  # the audit lines of the requests answered so far, before anything
        stop.set()

    def on_hup() -> None:
        AUDIT_SINK.flush()
        if reloader is None:  # still starting: the file just loaded is the one being applied
            log.info("SIGHUP during start-up ignored")
            return
        task = asyncio.create_task(reloader.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # Before anything else: SIGHUP's default action would kill the process.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)

    # With every listener at max_connections the process must still have descriptors left for
    # the others (and for Gate): otherwise a flood of one listener starves every key.
    fds, wanted = raise_fd_limit(
        len(config.keys) + 1, config.server, config.upstream.max_connections
    )
    if fds < wanted:
        log.warning(
            "the open-file limit is below what server.max_connections allows on every listener; "
            "lower max_connections or raise the hard limit (ulimit -Hn)",
            extra={"limit": fds, "needed": wanted},
        )
    async with contextlib.AsyncExitStack() as stack:
        try:
            sidecar = await stack.enter_async_context(running(config))  # every key listener
            try:
                admin = await open_admin(sidecar, config)
            except OSError as exc:
                raise ListenerUnavailable(None, config.admin.listen, exc) from exc
        except OSError as exc:
            log.error("cannot start", extra={"error": start_problem(config, exc)})
            return 1
        stack.push_async_callback(admin.close)
        # Everything made so far (modules, config, compiled policies) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it (a pause
        # of tens of ms every few thousand requests otherwise).
        gc.collect()
        gc.freeze()
        reloader = Reloader(sidecar, config_path)
        if brake_at_start.is_set():
            sidecar.brake_all("SIGUSR1")
        log.info("admin listener open", extra={"listen": admin.url, "config": config_path})
        await _until_stopped(stop, sidecar, admin, reloads)
    AUDIT_SINK.flush()
    log.info("stopped")
    return 0


async def _until_stopped(
    stop: asyncio.Event, sidecar: Sidecar, admin: LeanListener, reloads: set[asyncio.Task[bool]]
) -> None:
    await stop.wait()
    log.info(
        "shutting down: draining in-flight requests",
        extra={"grace_s": sidecar.config.server.shutdown_grace_s},
    )
    for task in list(reloads):
        task.cancel()
    # Every key listener stops accepting at once and drains in parallel; meanwhile the admin
    # listener stays up and /readyz answers 503 (the keys' listeners are closed).
    await sidecar.keys.stop_all()
