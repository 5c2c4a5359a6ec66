"""The running keys: each one's listener, slot, source task and compiled policy.

:class:`KeySet` is the only thing that starts, changes or stops a key; a config reload asks it
through its methods (:meth:`KeySet.use_policy`, :meth:`KeySet.swap_secret`,
:meth:`KeySet.move_listener`), never by reaching into a handle.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from sidecar.aio import cancel_and_wait
from sidecar.config.models import KeyConfig, ServerConfig
from sidecar.credentials.slot import KeySlot
from sidecar.credentials.sources.base import Source
from sidecar.credentials.watch import SWAPPED
from sidecar.gate.clock import Clock
from sidecar.policy.engine import Policy
from sidecar.policy.guards import Guards
from sidecar.proxy.admission import Admission
from sidecar.proxy.brake import Brake
from sidecar.proxy.budget import build_budget
from sidecar.proxy.forwarder import Forwarder
from sidecar.proxy.market import Market
from sidecar.proxy.pipeline import KeyRuntime
from sidecar.proxy.record import Observer
from sidecar.proxy.ws.runtime import WsShared
from sidecar.runtime.bind import ListenerUnavailable
from sidecar.runtime.listeners import Listener, serve_lean
from sidecar.runtime.safety import build_safety, start_safety, stop_safety
from sidecar.runtime.secrets import SecretFactory
from sidecar.tls import server_tls_context

log = logging.getLogger("sidecar.app")


@dataclass
class KeyHandle:
    """A running key: its config, runtime, source task and listener."""

    config: KeyConfig
    runtime: KeyRuntime
    source: Source
    task: asyncio.Task[None]
    listener: Listener

    @property
    def url(self) -> str:
        return self.listener.url


def _why(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such group {exc.args[0]!r}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return exc.strerror + where
    return str(exc)


async def _stop_source(source: Source, task: asyncio.Task[None]) -> None:
    await cancel_and_wait(task)
    await source.close()


class KeySet(Mapping[str, KeyHandle]):
    """The running keys by name."""

    def __init__(
        self,
        secrets: SecretFactory,
        forwarder: Forwarder,
        clock: Clock,
        server: ServerConfig,
        observers: list[Observer],
        ws: WsShared,
        market: Market | None = None,
    ) -> None:
        self._market = market
        self._secrets = secrets
        self._forwarder = forwarder
        self._clock = clock
        self._server = server
        self._observers = observers  # shared by reference with every KeyRuntime
        self._ws = ws
        self._handles: dict[str, KeyHandle] = {}

    # -- Mapping ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> KeyHandle:
        return self._handles[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handles)

    def __len__(self) -> int:
        return len(self._handles)

    # -- parts of one key ---------------------------------------------------------------------
    async def open_listener(self, key: KeyConfig, runtime: KeyRuntime) -> Listener:
        tls = key.client_auth.tls
        ssl_context = (
            None
            if tls is None
            else server_tls_context(tls.cert_file, tls.key_file, tls.client_ca_file)
        )
        mode, grace = int(key.socket_mode, 8), self._server.shutdown_grace_s
        return await serve_lean(
            runtime,
            key.address,
            mode=mode,
            shutdown_grace_s=grace,
            limits=self._server,
            ssl_context=ssl_context,
            group=key.socket_group,
        )

    # -- whole keys ---------------------------------------------------------------------------
    async def start(self, key: KeyConfig) -> KeyHandle:
        slot, source = self._secrets.build(key)
        runtime = KeyRuntime(
            name=key.name,
            policy=key.compile_policy(),
            slot=slot,
            forwarder=self._forwarder,
            clock=self._clock,
            max_body_bytes=self._server.max_body_bytes,
            observers=self._observers,
            guards=Guards(key.guards),
            brake=Brake(key.name, configured=key.guards.cancel_only),
            market=self._market,
            budget=build_budget(key.name, key.rate_limit),
            ws=self._ws.for_key(key.ws),
            body_timeout_s=self._server.body_timeout_s,
        )
        runtime.safety = build_safety(key, runtime)  # trading safety (sidecar.proxy.safety)
        opening = False  # an OSError before this is the token file's, not the listener's
        try:
            runtime.admission = key.admission()
            opening = True
            listener = await self.open_listener(key, runtime)
        except (OSError, KeyError, ssl.SSLError) as exc:
            log.error(
                "cannot open key listener",
                extra={"key": key.name, "listen": key.listen, "error": _why(exc)},
            )
            await source.close()
            if runtime.budget is not None:
                await runtime.budget.close()
            await stop_safety(runtime.safety, disarm=False)
            if opening and isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
                raise ListenerUnavailable(key.name, key.listen, exc) from exc
            raise
        task = asyncio.create_task(source.run(), name=f"source:{key.name}")
        start_safety(runtime.safety)
        handle = KeyHandle(key, runtime, source, task, listener)
        self._handles[key.name] = handle
        log.info(
            "key listener open",
            extra={"key": key.name, "listen": listener.url, "source": key.source.kind},
        )
        return handle

    async def stop(self, name: str) -> None:
        handle = self._handles.pop(name)
        await handle.listener.close()  # stop accepting, let in-flight requests finish
        await stop_safety(handle.runtime.safety)  # on_shutdown: keep disarms the dead man
        await _stop_source(handle.source, handle.task)
        if handle.runtime.budget is not None:
            await handle.runtime.budget.close()
        log.info("key listener closed", extra={"key": name, "listen": handle.url})

    async def stop_all(self) -> None:
        """Stop every key at once: all listeners stop accepting, then drain in parallel."""
        await asyncio.gather(*(self.stop(name) for name in list(self._handles)))

    # -- changing a running key (config reloads) ----------------------------------------------
    def use_config(
        self, key: KeyConfig, policy: Policy | None, admission: Admission | None = None
    ) -> None:
        """Record a key's new config; a new policy, admission or guards apply from the next
        request on. The cancel-only switch follows the file only where the file's value changed."""
        handle = self._handles[key.name]
        old, handle.config = handle.config, key
        if handle.runtime.ws is not None:
            handle.runtime.ws.settings = key.ws  # limits and on_rotation for what comes next
        if policy is not None:
            handle.runtime.policy = policy  # one reference, read once per request
        if admission is not None:
            handle.runtime.admission = admission
        if key.guards != old.guards:
            handle.runtime.guards = Guards(key.guards)
        if handle.runtime.brake is not None:
            handle.runtime.brake.configure(key.guards.cancel_only)

    async def swap_budget(self, key: KeyConfig) -> None:
        """A changed ``rate_limit``: new buckets (full) from the next request on."""
        runtime = self._handles[key.name].runtime
        old, runtime.budget = runtime.budget, build_budget(key.name, key.rate_limit)
        if old is not None:
            await old.close()

    def switch_cancel_only(self, name: str, on: bool, by: str) -> bool | None:
        """Engage or lift a key's brake (None: no such key; else whether it changed)."""
        handle = self._handles.get(name)
        if handle is None or handle.runtime.brake is None:
            return None
        return handle.runtime.brake.switch(on, by)

    async def swap_secret(
        self, key: KeyConfig, slot: KeySlot, source: Source, wait_s: float
    ) -> None:
        """Give a running key a new slot and source (its source config changed).

        The new source gets ``wait_s`` to load before the swap, so a healthy change never shows
        the key empty; after that the swap happens anyway (the config no longer names the old
        secret) and readiness shows why the key has none.
        """
        task = asyncio.create_task(source.run(), name=f"source:{key.name}")
        try:
            await asyncio.wait_for(source.loaded.wait(), timeout=wait_s)
        except TimeoutError:
            log.warning(
                "new secret source not loaded yet; switching to it anyway",
                extra={"key": key.name, "reason": slot.reason},
            )
        handle = self._handles[key.name]
        old_source, old_task = handle.source, handle.task
        handle.runtime.slot = slot  # one reference: each request reads the slot once
        handle.source, handle.task = source, task
        self._ws.watch(key.name, SWAPPED, "")  # WebSocket sessions look at the new slot
        await _stop_source(old_source, old_task)

    async def move_listener(self, name: str, listener: Listener) -> None:
        """Serve a key from an already opened new listener, then drain and close the old one."""
        handle = self._handles[name]
        old = handle.listener
        handle.listener = listener
        log.info(
            "key listener moved", extra={"key": name, "listen": listener.url, "previous": old.url}
        )
        await old.close()

    def refresh_all(self) -> None:
        for handle in self._handles.values():
            handle.source.refresh_now()
