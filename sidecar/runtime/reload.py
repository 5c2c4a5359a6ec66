"""Applying a new config file to a running sidecar (SIGHUP) without dropping traffic.

A reload is all or nothing. :func:`plan_reload` (pure) compares the running config with the new
one key by key; :func:`apply_config` first does everything that can fail (open new listeners,
build new sources, start added keys) and undoes it all if anything fails, so the running config
keeps serving; only then does it commit. Per key:

- unchanged: nothing happens; its listener, slot and in-flight requests are untouched;
- policy changed: the compiled policy is swapped in place (the next request uses it);
- guards changed: swapped in place likewise; the cancel-only brake follows the file only when
  ``guards.cancel_only`` itself changed (a brake switched at run time survives other reloads);
- rate_limit changed: new, full buckets from the next request on;
- admission changed (``client_auth``, ``allowed_hosts``, ``forward_headers``): swapped in place; a
  changed ``client_auth.tls`` also moves the listener (a new TLS context);
- ws changed: the limits and ``on_rotation`` apply to what comes next (open sessions stay);
- source changed (or ``max_stale_s``, ``canary``): a new slot and source load, then are swapped in;
- listener changed: the new listener opens first, then the old one drains and closes;
- added / removed: the listener opens / drains and closes.

Process-wide plumbing (``upstream``, ``admin``, ``server``, ``vault``) needs a restart: a new file
that changes it is refused with a reason. ``logging`` and ``clock`` apply at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from sidecar.config import Config, KeyConfig, load_config
from sidecar.config.loading import preflight
from sidecar.credentials.slot import KeySlot
from sidecar.credentials.sources.base import Source
from sidecar.errors import ConfigError
from sidecar.policy.engine import Policy
from sidecar.proxy.admission import Admission
from sidecar.runtime.bind import ListenerUnavailable
from sidecar.runtime.listeners import Listener
from sidecar.runtime.state import Sidecar

log = logging.getLogger("sidecar.reload")

RESTART_SECTIONS = ("upstream", "admin", "server", "vault")
LISTENER_FIELDS = frozenset({"listen", "socket_mode", "socket_group"})
ADMISSION_FIELDS = frozenset({"client_auth", "allowed_hosts", "forward_headers"})
POLICY_FIELDS = frozenset({"policy", "allow_withdrawals"})
SECRET_FIELDS = frozenset({"source", "max_stale_s", "canary", "self_check"})
GUARD_FIELDS = frozenset({"guards", "rate_limit"})  # applied in place by Sidecar.commit
WS_FIELDS = frozenset({"ws"})  # likewise (KeySet.use_config)
INERT_FIELDS = frozenset({"name", "allow_remote"})  # checked when the file is validated, no more
SECRET_SWAP_WAIT_S = 10.0  # a changed source gets this long to load before it is swapped in


class ReloadRefused(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class KeyChange:
    key: KeyConfig  # the new config of the key
    policy: bool
    secret: bool
    listener: bool
    guards: bool = False
    admission: bool = False
    ws: bool = False


@dataclass(frozen=True)
class ReloadPlan:
    added: tuple[KeyConfig, ...]
    removed: tuple[str, ...]
    changed: tuple[KeyChange, ...]
    unchanged: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "added": [k.name for k in self.added],
            "removed": list(self.removed),
            "changed": {
                c.key.name: [
                    n
                    for n in ("policy", "guards", "secret", "listener", "admission", "ws")
                    if getattr(c, n)
                ]
                for c in self.changed
            },
            "unchanged": list(self.unchanged),
        }


def _key_change(old: KeyConfig, new: KeyConfig) -> KeyChange | None:
    differing = {f for f in type(new).model_fields if getattr(old, f) != getattr(new, f)}
    differing -= INERT_FIELDS
    if not differing:
        return None
    # A field added to KeyConfig later feeds the policy or the source: rebuild both.
    unknown = bool(
        differing
        - LISTENER_FIELDS
        - POLICY_FIELDS
        - SECRET_FIELDS
        - GUARD_FIELDS
        - ADMISSION_FIELDS
        - WS_FIELDS
    )
    return KeyChange(
        key=new,
        policy=bool(differing & POLICY_FIELDS) or unknown,
        secret=bool(differing & SECRET_FIELDS) or unknown,
        listener=bool(differing & LISTENER_FIELDS) or old.client_auth.tls != new.client_auth.tls,
        guards=bool(differing & GUARD_FIELDS),
        admission=bool(differing & ADMISSION_FIELDS) or unknown,
        ws=bool(differing & WS_FIELDS),
    )


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """What applying ``new`` over ``old`` changes; ReloadRefused if it needs a restart."""
    problems = [
        f"{section}: changed; restart gate-sidecar to apply it"
        for section in RESTART_SECTIONS
        if getattr(old, section) != getattr(new, section)
    ]
    if problems:
        raise ReloadRefused(problems)
    old_keys = {k.name: k for k in old.keys}
    new_names = {k.name for k in new.keys}
    changed, unchanged = [], []
    for key in new.keys:
        if key.name in old_keys:
            change = _key_change(old_keys[key.name], key)
            if change is None:
                unchanged.append(key.name)
            else:
                changed.append(change)
    return ReloadPlan(
        added=tuple(k for k in new.keys if k.name not in old_keys),
        removed=tuple(name for name in old_keys if name not in new_names),
        changed=tuple(changed),
        unchanged=tuple(unchanged),
    )


@dataclass
class _Prepared:
    """What phase one built; closed again if the reload is refused."""

    policies: dict[str, Policy]
    admissions: dict[str, Admission]
    secrets: dict[str, tuple[KeySlot, Source]]
    listeners: dict[str, Listener]
    started: list[str]

    async def undo(self, sidecar: Sidecar) -> None:
        for name in self.started:
            await sidecar.keys.stop(name)
        for listener in self.listeners.values():
            await listener.close()
        for _, source in self.secrets.values():
            await source.close()


async def _prepare(sidecar: Sidecar, new: Config, plan: ReloadPlan) -> _Prepared:
    prepared = _Prepared({}, {}, {}, {}, [])
    where = ""
    try:
        where = "vault"
        await sidecar.secrets.ensure_vault(new)
        for change in plan.changed:
            key = change.key
            where = f"keys[{new.keys.index(key)}] ({key.name})"
            if change.policy:
                prepared.policies[key.name] = key.compile_policy()
            if change.admission:
                prepared.admissions[key.name] = key.admission()
            if change.secret:
                prepared.secrets[key.name] = sidecar.secrets.build(key)
            if change.listener:
                runtime = sidecar.keys[key.name].runtime
                prepared.listeners[key.name] = await sidecar.keys.open_listener(key, runtime)
        for key in plan.added:
            where = f"keys[{new.keys.index(key)}] ({key.name})"
            await sidecar.keys.start(key)
            prepared.started.append(key.name)
    except ConfigError as exc:  # a policy that does not compile
        await prepared.undo(sidecar)
        raise ReloadRefused(exc.problems) from None
    except Exception as exc:
        await prepared.undo(sidecar)
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        kind = "OSError" if isinstance(exc, ListenerUnavailable) else type(exc).__name__
        raise ReloadRefused([f"{where}: {kind}: {detail}"]) from None
    return prepared


async def apply_config(
    sidecar: Sidecar, new: Config, secret_wait_s: float = SECRET_SWAP_WAIT_S
) -> ReloadPlan:
    """Make ``new`` the running config, or raise ReloadRefused and leave everything as it was."""
    plan = plan_reload(sidecar.config, new)
    # A new source that can never load (an env variable this process does not have) is refused
    # here, as `serve` refuses it at start, rather than retried forever.
    fresh = {k.name for k in plan.added} | {c.key.name for c in plan.changed if c.secret}
    problems = preflight(new, sidecar.environ, fresh)
    if problems:
        raise ReloadRefused(problems)
    prepared = await _prepare(sidecar, new, plan)
    # Commit: nothing below refuses; policies first, so a stricter policy applies at once.
    await sidecar.commit(new, prepared.policies, prepared.admissions)
    slow: list[Awaitable[None]] = [sidecar.keys.stop(name) for name in plan.removed]
    slow += [sidecar.keys.move_listener(n, listener) for n, listener in prepared.listeners.items()]
    slow += [
        sidecar.keys.swap_secret(new.key(name), slot, source, secret_wait_s)
        for name, (slot, source) in prepared.secrets.items()
    ]
    await asyncio.gather(*slow)  # drains and source loads run side by side
    return plan


class Reloader:
    """Reloads the config file on request (SIGHUP), one reload at a time."""

    def __init__(self, sidecar: Sidecar, path: str) -> None:
        self.sidecar = sidecar
        self.path = path
        self._lock = asyncio.Lock()

    async def reload(self) -> bool:
        """Load, validate and apply the file. True when applied. Always refreshes secrets."""
        async with self._lock:
            try:
                new = load_config(self.path, self.sidecar.environ)
                plan = await apply_config(self.sidecar, new)
            except (ConfigError, ReloadRefused) as exc:
                self.sidecar.metrics.reloads.labels("rejected").inc()
                log.error(
                    "config reload rejected; the running config keeps serving",
                    extra={"config": self.path, "problems": exc.problems},
                )
                return False
            finally:
                # SIGHUP also means "check your secrets now", whatever became of the file.
                self.sidecar.keys.refresh_all()
            self.sidecar.metrics.reloads.labels("applied").inc()
            log.info("config reloaded", extra={"config": self.path, **plan.summary()})
            return True
