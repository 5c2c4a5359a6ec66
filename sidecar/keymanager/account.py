"""One managed account: rotate, resume after a crash, retire, sweep orphans, repair drift.

The steps of a rotation, each recorded in Vault before the next one starts
(:mod:`sidecar.keymanager.progress`):

1. MINTING: the store's marker and the generation are recorded; the key is created at Gate as
   ``gs-<account>-<generation>``; its secret stays in memory only.
2. MINTED: its id is recorded. A signed read with the new key is repeated until Gate accepts it
   (at most ``activation_timeout``; then the key is deleted and the rotation fails).
3. The pair is written to the store (retried while Vault is sealed or away, at most
   ``store_timeout``; then the key is deleted and the rotation fails). Sidecars pick it up.
4. RETIRING: the previous key is deleted once Gate's ``last_access`` shows it idle for
   ``retire_idle`` after the switch, or ``retire_max_wait`` after the switch in any case.

A manager that died mid-way resumes from the record: a key minted but never stored (its secret
died with the process) is an orphan and is deleted; a key whose pair reached the store is
finished. Every pass also deletes any ``gs-<account>-*`` key that is neither the stored key nor
the one being retired: whatever crash or lost answer left it there, its secret is gone.

Longer than most modules on purpose: :class:`AccountKeeper` is one state machine (a key's life
at Gate and in the store), and splitting its steps over files would hide how they hand over.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sidecar.aio import backoff_s
from sidecar.credentials.rotation import canary_verdict
from sidecar.keymanager.gate_keys import GateError, GateKeys, Minted
from sidecar.keymanager.observe import Event, ManagerMetrics, audit
from sidecar.keymanager.perms import Perms, as_body, drift
from sidecar.keymanager.progress import Phase, Progress, ProgressBook
from sidecar.keymanager.settings import AccountConfig
from sidecar.keymanager.stores import Store
from sidecar.vault.errors import VaultUnavailable
from sidecar.vault.transit.importer import KeyImportError

T = TypeVar("T")
STATES: dict[Any, str] = {1: "normal", 2: "locked", 3: "frozen"}
PROBE_GAP_S = 0.5  # between two activation probes


class RotationFailed(Exception):
    """A rotation gave up; the message says at which step and why (never a secret)."""


def gate_time(value: Any) -> float | None:
    """Gate's seconds field (number or numeric string) as a float; None when absent or 0."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds or None


@dataclass(frozen=True)
class KeyView:
    """What ``keys status`` shows of one account (no secret, the key as a fingerprint)."""

    account: str
    key: str | None
    state: str
    age_s: float | None
    last_access: float | None
    next_rotation: float | None
    phase: str


class AccountKeeper:
    def __init__(
        self,
        cfg: AccountConfig,
        perms: Perms,
        gate: GateKeys,
        store: Store,
        book: ProgressBook,
        metrics: ManagerMetrics,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.cfg, self.perms, self.gate, self.store, self.book = cfg, perms, gate, store, book
        self.metrics = metrics
        self.now = now
        self.name_re = re.compile(re.escape(cfg.key_prefix) + r"(\d+)")
        metrics.rotate_every.labels(cfg.name).set(cfg.rotate_every)

    # -- helpers ---------------------------------------------------------------------------------
    def _generation(self, key: dict[str, Any]) -> int | None:
        name = key.get("name")
        m = self.name_re.fullmatch(name) if isinstance(name, str) else None
        return int(m.group(1)) if m else None

    async def _vault(self, what: Callable[[], Awaitable[T]], deadline_s: float) -> T:
        """Run a Vault step, retrying while Vault is sealed or away (until ``deadline_s``)."""
        end = time.monotonic() + deadline_s
        failures = 0
        while True:
            try:
                return await what()
            except VaultUnavailable:
                failures += 1
                if time.monotonic() >= end:
                    raise
                await asyncio.sleep(min(backoff_s(failures, 2.0), max(0.0, end - time.monotonic())))

    async def _save(self, progress: Progress) -> Progress:
        await self._vault(lambda: self.book.write(self.cfg.name, progress), self.cfg.store_timeout)
        return progress

    def _body(self, name: str) -> dict[str, Any]:
        return {
            "mode": self.cfg.mode,
            "name": name,
            "perms": as_body(self.perms),
            "ip_whitelist": list(self.cfg.ip_whitelist),
        }

    async def _delete_orphan(self, key: str, why: str) -> None:
        if await self.gate.delete(self.cfg.user_id, key):
            self.metrics.orphans.labels(self.cfg.name).inc()
            audit(Event.ORPHAN_DELETED, self.cfg.name, key, detail=why)

    # -- one pass --------------------------------------------------------------------------------
    async def tick(self, *, rotate: bool = True) -> Progress:
        """Resume, sweep, retire, repair, and rotate when due. Raises on trouble (the caller
        retries with backoff); every step already taken is recorded."""
        progress = await self.resume(await self.book.read(self.cfg.name))
        stored = await self.store.current_key()
        if stored != progress.current and progress.phase is Phase.IDLE:
            progress = await self._save(progress.next(Phase.IDLE, current=stored))
        keys = {
            k["key"]: k
            for k in await self.gate.list(self.cfg.user_id)
            if isinstance(k.get("key"), str)
        }
        await self.sweep(keys, progress)
        if progress.phase is Phase.RETIRING:
            progress = await self.retire_if_idle(progress, keys.get(progress.previous or ""))
        current = keys.get(stored or "")
        if current is not None:
            await self.repair(current)
        due = self.due_at(current, progress)
        self._observe(current, due)
        if (
            rotate
            and progress.phase is Phase.IDLE
            and (current is None or (due is not None and self.now() >= due))
        ):
            progress = await self.rotate(progress)
        return progress

    def due_at(self, key: dict[str, Any] | None, progress: Progress | None = None) -> float | None:
        """When the key is due for rotation: Gate's ``created_at`` (else when it was stored)
        plus ``rotate_every``."""
        created = None if key is None else gate_time(key.get("created_at"))
        if created is None and progress is not None:
            created = progress.switched_at
        return None if created is None else created + self.cfg.rotate_every

    def _observe(self, key: dict[str, Any] | None, due: float | None) -> None:
        created = None if key is None else gate_time(key.get("created_at"))
        if created is not None:
            self.metrics.key_age.labels(self.cfg.name).set(max(0.0, self.now() - created))
        if due is not None:
            self.metrics.next_rotation.labels(self.cfg.name).set(due)

    async def resume(self, progress: Progress) -> Progress:
        """Finish or undo a rotation a dead manager left half done."""
        name = self.cfg.name
        if progress.phase is Phase.MINTING:
            # The create may or may not have happened: a key with that name has no known secret.
            wanted = f"{self.cfg.key_prefix}{progress.generation}"
            for key in await self.gate.list(self.cfg.user_id):
                if key.get("name") == wanted and isinstance(key.get("key"), str):
                    await self._delete_orphan(key["key"], "minted, never recorded")
            audit(Event.RESUMED, name, None, detail="rotation interrupted while minting")
            return await self._save(
                progress.next(Phase.IDLE, current=progress.previous, previous=None)
            )
        if progress.phase is Phase.MINTED and progress.pending is not None:
            pending = progress.pending
            if await self.store.landed(progress.marker, pending):
                await self.store.finish(pending)
                audit(Event.STORED, name, pending, detail="finished after a restart")
                return await self._save(
                    progress.next(
                        Phase.RETIRING, current=pending, pending=None, switched_at=self.now()
                    )
                )
            await self._delete_orphan(pending, "minted, never stored")
            audit(Event.RESUMED, name, None, detail="rotation interrupted before the store")
            return await self._save(
                progress.next(Phase.IDLE, current=progress.previous, previous=None, pending=None)
            )
        return progress

    async def sweep(self, keys: dict[str, dict[str, Any]], progress: Progress) -> None:
        """Delete every key named ``gs-<account>-*`` that is neither stored nor being retired."""
        keep = {progress.current, progress.previous, progress.pending}
        for key_id, key in keys.items():
            if key_id not in keep and self._generation(key) is not None:
                await self._delete_orphan(key_id, "not in the store")

    async def repair(self, key: dict[str, Any]) -> None:
        found = drift(self.perms, self.cfg.ip_whitelist, key)
        if not found.any:
            return
        name = key.get("name") if isinstance(key.get("name"), str) else ""
        await self.gate.replace(self.cfg.user_id, key["key"], self._body(str(name)))  # a full PUT
        self.metrics.drift.labels(self.cfg.name).inc()
        audit(Event.DRIFT_REPAIRED, self.cfg.name, key["key"], changes=list(found.changes))

    async def retire_if_idle(self, progress: Progress, key: dict[str, Any] | None) -> Progress:
        if progress.previous is not None and key is not None:
            now, switched = self.now(), progress.switched_at or self.now()
            # Gate counts whole seconds: the last access may have been late in that second.
            last = (gate_time(key.get("last_access")) or -1.0) + 1.0
            idle_for = now - max(last, switched)
            if idle_for < self.cfg.retire_idle and now - switched < self.cfg.retire_max_wait:
                return progress
            await self.gate.delete(self.cfg.user_id, progress.previous)
            self.metrics.retired.labels(self.cfg.name).inc()
            why = "idle" if idle_for >= self.cfg.retire_idle else "retire_max_wait passed"
            audit(Event.RETIRED, self.cfg.name, progress.previous, detail=why)
        return await self._save(progress.next(Phase.IDLE, previous=None))

    # -- a rotation ------------------------------------------------------------------------------
    async def rotate(self, progress: Progress) -> Progress:
        try:
            progress = await self._rotate(progress)
        except Exception:
            self.metrics.rotations.labels(self.cfg.name, "failed").inc()
            raise
        self.metrics.rotations.labels(self.cfg.name, "ok").inc()
        return progress

    async def _rotate(self, progress: Progress) -> Progress:
        cfg, uid = self.cfg, self.cfg.user_id
        keys = await self.gate.list(uid)
        generation = (
            max([progress.generation, *(g for k in keys if (g := self._generation(k)))], default=0)
            + 1
        )
        marker = await self._vault(self.store.marker, cfg.store_timeout)
        previous = progress.current
        minting = await self._save(
            progress.next(Phase.MINTING, generation=generation, previous=previous, marker=marker)
        )
        name = f"{cfg.key_prefix}{generation}"
        try:
            minted = await self.gate.create(uid, self._body(name))
        except GateError as exc:
            await self.resume(minting)  # a create that failed may still have happened
            raise RotationFailed(f"minting {name}: {exc}") from None
        audit(Event.MINTED, cfg.name, minted.key, name=name, generation=generation)
        try:
            pending = await self._save(minting.next(Phase.MINTED, pending=minted.key))
        except VaultUnavailable:
            await self._undo(minted, minting, "Vault unavailable before the key was recorded")
            raise RotationFailed(f"recording {name}: Vault unavailable") from None
        await self.sweep(
            {k["key"]: k for k in await self.gate.list(uid) if k.get("name") == name}, pending
        )
        await self._activate(minted, pending)
        try:
            await self._vault(lambda: self.store.write(minted), cfg.store_timeout)
        except (VaultUnavailable, KeyImportError) as exc:
            if not await self.store.landed(marker, minted.key):
                await self._undo(minted, pending, f"store failed: {exc}")
                raise RotationFailed(f"storing {name} in {self.store.where}: {exc}") from None
        audit(Event.STORED, cfg.name, minted.key, store=self.store.where)
        return await self._save(
            pending.next(Phase.RETIRING, current=minted.key, pending=None, switched_at=self.now())
        )

    async def _activate(self, minted: Minted, pending: Progress) -> None:
        """Wait until Gate accepts the new key (Gate takes up to 5 minutes)."""
        end = time.monotonic() + self.cfg.activation_timeout
        last = "no answer"
        while time.monotonic() < end:
            status, label = await self.gate.probe(minted)
            if status is not None and canary_verdict(status, label).ok:
                audit(Event.ACTIVATED, self.cfg.name, minted.key, status=status)
                return
            last = "no answer" if status is None else f"HTTP {status} {label or ''}".strip()
            await asyncio.sleep(min(PROBE_GAP_S, max(0.0, end - time.monotonic())))
        await self._undo(
            minted, pending, f"not active after {self.cfg.activation_timeout:g}s ({last})"
        )
        raise RotationFailed(f"activating {minted.doc.get('name')}: Gate still answers {last}")

    async def _undo(self, minted: Minted, progress: Progress, why: str) -> None:
        """Delete a key this rotation minted and record the rotation as not done."""
        await self._delete_orphan(minted.key, why)
        audit(Event.ROTATION_FAILED, self.cfg.name, minted.key, detail=why)
        await self._save(
            progress.next(Phase.IDLE, current=progress.previous, previous=None, pending=None)
        )

    # -- operator commands -----------------------------------------------------------------------
    async def retire(self) -> None:
        """Delete the stored key at Gate and in the store (``keys retire``)."""
        progress = await self.resume(await self.book.read(self.cfg.name))
        stored = await self.store.current_key()
        for key in {stored, progress.previous, progress.current} - {None}:
            assert key is not None
            await self.gate.delete(self.cfg.user_id, key)
            audit(Event.RETIRED, self.cfg.name, key, detail="retired by the operator")
        await self.store.clear()
        await self._save(Progress(generation=progress.generation))

    async def lock(self, *, locked: bool) -> None:
        await self.gate.lock(self.cfg.user_id, locked=locked)
        audit(
            Event.LOCKED if locked else Event.UNLOCKED,
            self.cfg.name,
            None,
            user_id=self.cfg.user_id,
        )

    async def view(self) -> KeyView:
        progress = await self.book.read(self.cfg.name)
        stored = await self.store.current_key()
        key = None if stored is None else await self.gate.get(self.cfg.user_id, stored)
        created = None if key is None else gate_time(key.get("created_at"))
        code = None if key is None else key.get("state")
        state = "missing at Gate" if key is None else STATES.get(code, f"state {code}")
        return KeyView(
            self.cfg.name,
            stored,
            "none stored" if stored is None else state,
            None if created is None else self.now() - created,
            None if key is None else gate_time(key.get("last_access")),
            self.due_at(key, progress),
            progress.phase.value,
        )
