"""The running sidecar: one object composed of parts that each do one job.

- :class:`~sidecar.runtime.secrets.SecretFactory`: a key's slot and source, the canary, Vault;
- :class:`~sidecar.runtime.clock.ClockKeeper`: clock sync as the config asks;
- :class:`~sidecar.runtime.keys.KeySet`: the running keys and their listeners;
- :class:`~sidecar.ops.metrics.Metrics` and the observer list every request is reported to.

:class:`Sidecar` starts and stops them in order, applies a reload's plan (:meth:`Sidecar.commit`),
and is the :class:`~sidecar.ops.status.SidecarView` that /readyz and /metrics read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sidecar.config.models import Config
from sidecar.credentials.watch import CredentialWatch
from sidecar.errors import KeyUnavailable
from sidecar.gate.clock import Clock
from sidecar.ops.audit import audit_line
from sidecar.ops.guard_metrics import GuardMetrics
from sidecar.ops.logs import setup_logging
from sidecar.ops.metrics import Metrics
from sidecar.ops.safety_metrics import SafetyMetrics
from sidecar.ops.status import KeyStatus
from sidecar.ops.ws_metrics import WsMetrics
from sidecar.policy.engine import Policy
from sidecar.proxy.admission import Admission
from sidecar.proxy.forwarder import Forwarder
from sidecar.proxy.market import Market
from sidecar.proxy.record import Observer
from sidecar.proxy.ws.record import WsStats
from sidecar.proxy.ws.runtime import WsShared
from sidecar.proxy.ws.upstream import WsUpstream
from sidecar.runtime.clock import ClockKeeper
from sidecar.runtime.keys import KeySet
from sidecar.runtime.safety import safety_status, swap_safety
from sidecar.runtime.secrets import SecretFactory
from sidecar.vault.session import VaultStatus

log = logging.getLogger("sidecar.app")


class Sidecar:
    def __init__(self, config: Config, environ: Mapping[str, str], forwarder: Forwarder) -> None:
        self.config = config
        self.environ = environ
        self.forwarder = forwarder
        self.clock = Clock()
        self.metrics = Metrics()
        # Shared by reference with every key's runtime: changed in place, never rebound.
        self.observers: list[Observer] = []
        up = config.upstream
        self.ws = WsShared(
            WsUpstream(up.ws, connect_timeout_s=up.connect_timeout_s, ca_file=up.ca_file),
            CredentialWatch(),
        )
        self.ws_metrics = WsMetrics(self.metrics.registry, self._ws_stats)
        self.secrets = SecretFactory(
            environ, forwarder, self.clock, [self.metrics.on_credential_event, self.ws.watch]
        )
        self.clock_keeper = ClockKeeper(self.clock, forwarder, config.upstream.timeout_s)
        self.market = Market(forwarder)  # public prices for the guards, shared by every key
        self.keys = KeySet(
            self.secrets,
            forwarder,
            self.clock,
            config.server,
            self.observers,
            self.ws,
            self.market,
        )
        self.metrics.watch(self)
        self.guard_metrics = GuardMetrics(self.metrics.registry, self)
        self.safety_metrics = SafetyMetrics(self.metrics.registry, self)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.secrets.ensure_vault(self.config)
        # Measure the clock before any listener opens: a host minutes off would otherwise sign
        # its first requests with a timestamp Gate refuses.
        await self.configure_clock()
        for key in self.config.keys:
            await self.keys.start(key)

    async def close(self) -> None:
        await self.keys.stop_all()
        await self.ws.upstream.close()
        await self.clock_keeper.close()
        await self.secrets.close()
        await self.market.close()
        await self.forwarder.close()
        self.metrics.unwatch()
        self.guard_metrics.unwatch()
        self.safety_metrics.unwatch()

    async def configure_clock(self) -> None:
        """Clock sync and the observer list as ``self.config`` says."""
        await self.clock_keeper.configure(self.config.clock)
        observers: list[Observer] = [
            self.metrics.observe,
            self.guard_metrics.observe,
            self.safety_metrics.observe,
        ]
        if self.config.logging.audit:
            observers.append(audit_line)
        if self.clock_keeper.observer is not None:
            observers.append(self.clock_keeper.observer)
        self.observers[:] = observers
        self.ws.observers[:] = [
            *self.ws_metrics.observers(audit=self.config.logging.audit),
            self.guard_metrics.observe,
            self.safety_metrics.observe,
        ]

    async def commit(
        self,
        new: Config,
        policies: Mapping[str, Policy],
        admissions: Mapping[str, Admission] | None = None,
    ) -> None:
        """Make ``new`` the running config (a reload's commit step; it cannot fail).

        Keys whose policy changed get theirs from ``policies``; every changed key's handle gets
        its new config. Sources and listeners are swapped by the reload itself, after this.
        """
        old, self.config = self.config, new
        for key in new.keys:
            if key.name in self.keys and key != self.keys[key.name].config:
                budget_changed = key.rate_limit != self.keys[key.name].config.rate_limit
                admission = (admissions or {}).get(key.name)
                old_key = self.keys[key.name].config
                self.keys.use_config(key, policies.get(key.name), admission)
                await swap_safety(old_key, key, self.keys[key.name].runtime)
                if budget_changed:
                    await self.keys.swap_budget(key)
        if (old.logging.format, old.logging.level) != (new.logging.format, new.logging.level):
            setup_logging(new.logging.format, new.logging.level)
        await self.configure_clock()

    def _ws_stats(self) -> dict[str, WsStats]:
        return {
            name: handle.runtime.ws.stats
            for name, handle in self.keys.items()
            if handle.runtime.ws is not None
        }

    # -- the view for /readyz and /metrics (sidecar.ops.status.SidecarView) -------------------
    def key_statuses(self) -> list[KeyStatus]:
        statuses = []
        for key in self.config.keys:
            handle = self.keys.get(key.name)
            if handle is None or not handle.listener.is_open:
                statuses.append(
                    KeyStatus(key.name, key.listen, None, 0, False, None, None, 0, 0, {})
                )
                continue
            runtime = handle.runtime
            slot = runtime.slot
            try:
                slot.current()
                problem = None
            except KeyUnavailable as exc:  # messages name keys and reasons, never secrets
                problem = exc.message
            statuses.append(
                KeyStatus(
                    name=key.name,
                    listen=key.listen,
                    url=handle.url,
                    open_connections=handle.listener.open_connections,
                    ready=problem is None,
                    problem=problem,
                    version=slot.version,
                    age_s=slot.age_seconds,
                    stale_s=slot.stale_seconds,
                    slot=slot.status(),
                    cancel_only=runtime.brake is not None and runtime.brake.engaged,
                    budget_fallback=None if runtime.budget is None else runtime.budget.fallback,
                    **safety_status(runtime.safety),
                )
            )
        return statuses

    def switch_cancel_only(self, name: str, on: bool, by: str) -> bool | None:
        return self.keys.switch_cancel_only(name, on, by)

    def brake_all(self, by: str) -> None:
        """SIGUSR1: every key to cancel-only."""
        for name in self.keys:
            self.keys.switch_cancel_only(name, True, by)

    @property
    def clock_offset_s(self) -> float:
        return self.clock.offset_s

    def clock_sync_counts(self) -> tuple[int, int] | None:
        return self.clock_keeper.counts()

    def vault_status(self) -> VaultStatus | None:
        vault = self.secrets.vault
        return None if vault is None else vault.status()
