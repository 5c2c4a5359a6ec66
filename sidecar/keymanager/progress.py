"""The manager's memory, kept in Vault: each account's progress, and the one-manager lock.

Progress (``<state.mount>/<state.path>/accounts/<name>``, KV v2) is written before and after
every step, so a manager killed at any point resumes from the last step it recorded; it holds
key ids, names and times, never a secret. The lock (``.../lock``) is a KV v2 check-and-set: a
manager writes it with ``cas`` equal to the version it read, so of two managers racing for it
exactly one write succeeds; the holder renews it, and a lock not renewed for ``lock_ttl`` may be
taken over.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import hvac

from sidecar.vault.errors import VaultError, VaultNotFound
from sidecar.vault.kv import read_kv2
from sidecar.vault.session import VaultSession


class Phase(enum.Enum):
    IDLE = "idle"  # the store holds ``current``; nothing in flight
    MINTING = "minting"  # about to create ``gs-<account>-<generation>`` (id not known yet)
    MINTED = "minted"  # ``pending`` exists at Gate; its secret is only in memory
    RETIRING = "retiring"  # the store holds ``current``; ``previous`` awaits deletion


@dataclass(frozen=True)
class Progress:
    phase: Phase = Phase.IDLE
    generation: int = 0  # of the last key minted (its name's suffix)
    current: str | None = None  # the key id the store holds
    previous: str | None = None  # the key id being replaced or retired
    pending: str | None = None  # the key id minted, not yet stored
    marker: int = 0  # the store's marker before the write (stores.Store.marker)
    switched_at: float | None = None  # when the store got ``current`` (unix seconds)

    def to_data(self) -> dict[str, str]:
        out = {k: ("" if v is None else str(v)) for k, v in asdict(self).items()}
        out["phase"] = self.phase.value
        return out

    @classmethod
    def from_data(cls, data: Any) -> Progress:
        if not isinstance(data, Mapping):
            return cls()

        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) and value else None

        def number(name: str) -> float | None:
            value = text(name)
            try:
                return None if value is None else float(value)
            except ValueError:
                return None

        try:
            phase = Phase(data.get("phase", "idle"))
        except ValueError:
            phase = Phase.IDLE
        return cls(
            phase,
            int(number("generation") or 0),
            text("current"),
            text("previous"),
            text("pending"),
            int(number("marker") or 0),
            number("switched_at"),
        )

    def next(self, phase: Phase, **changes: Any) -> Progress:
        return replace(self, phase=phase, **changes)


class ProgressBook:
    """Reads and writes the progress records (Vault errors propagate: callers retry)."""

    def __init__(self, session: VaultSession, mount: str, path: str) -> None:
        self.session, self.mount, self.base = session, mount, path.strip("/")

    async def read(self, account: str) -> Progress:
        try:
            kv = await read_kv2(
                self.session, self.mount, f"{self.base}/accounts/{account}", known=None
            )
        except VaultNotFound:
            return Progress()
        return Progress() if kv.problem is not None else Progress.from_data(kv.fields)

    async def write(self, account: str, progress: Progress) -> None:
        path, mount, data = f"{self.base}/accounts/{account}", self.mount, progress.to_data()

        def write(client: hvac.Client) -> Any:
            return client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, mount_point=mount
            )

        await self.session.call(write, what=f"writing the progress of {account}")


class LockLost(Exception):
    """Another manager holds the lock (or took it over)."""


class VaultLock:
    """One manager at a time: a check-and-set KV v2 record with a holder id and an expiry."""

    def __init__(self, session: VaultSession, mount: str, path: str, ttl_s: float) -> None:
        self.session, self.mount, self.path = session, mount, f"{path.strip('/')}/lock"
        self.ttl_s = ttl_s
        self.holder = uuid.uuid4().hex
        self.version: int | None = None  # the lock version this manager wrote last
        self._written_at = 0.0  # monotonic time of that write

    @property
    def held(self) -> bool:
        """Held, and renewed recently enough that no other manager can have taken it over
        (a margin below ``ttl_s``: renewals that fail, Vault being away, let it lapse)."""
        return self.version is not None and time.monotonic() - self._written_at < self.ttl_s * 0.8

    async def _state(self) -> tuple[int, str | None, float]:
        try:
            kv = await read_kv2(self.session, self.mount, self.path, known=None)
        except VaultNotFound:
            return 0, None, 0.0
        data = kv.fields if isinstance(kv.fields, Mapping) else {}
        expires = data.get("expires_at")
        try:
            until = float(expires) if isinstance(expires, str) else 0.0
        except ValueError:
            until = 0.0
        holder = data.get("holder") if kv.problem is None else None
        return kv.version, holder if isinstance(holder, str) else None, until

    async def _write(self, cas: int) -> bool:
        started = time.monotonic()
        path, mount = self.path, self.mount
        data = {"holder": self.holder, "expires_at": f"{time.time() + self.ttl_s:.3f}"}

        def write(client: hvac.Client) -> Any:
            return client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=mount
            )

        try:
            answer = await self.session.call(write, what="writing the key manager's lock")
        except VaultError as exc:
            if "check-and-set" in str(exc):
                return False  # another manager wrote first
            raise
        self.version = int(answer["data"]["version"])
        self._written_at = started
        return True

    async def acquire(self) -> bool:
        """Take (or renew) the lock; False while another manager holds it."""
        version, holder, until = await self._state()
        if holder is not None and holder != self.holder and until > time.time():
            self.version = None
            return False
        if holder == self.holder and self.version is not None and version != self.version:
            self.version = None  # someone took it over meanwhile (we were too slow to renew)
            return False
        if not await self._write(version):
            self.version = None
            return False
        return True

    async def release(self) -> None:
        if self.version is None:
            return
        path, mount, version = self.path, self.mount, self.version
        self.version = None

        def expire(client: hvac.Client) -> Any:
            data = {"holder": "", "expires_at": "0"}
            return client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=version, mount_point=mount
            )

        try:
            await self.session.call(expire, what="releasing the key manager's lock")
        except VaultError:
            pass  # it expires on its own
