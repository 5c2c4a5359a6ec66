"""Gate's sub-account key endpoints, signed with the main key, retried within Gate's limit.

Every call goes through one token bucket (Gate allows 80 requests per 10 s on the sub-account
endpoints) and one retry rule (:func:`next_step`): 429, 5xx and transport failures are retried
with backoff until ``retry_for_s`` has passed; any other 4xx is Gate's definitive answer. A create
that failed in transit may still have happened at Gate: the controller then finds the key by its
name and deletes it (nothing here can, since the secret of such a key is unknown).

The create answer's ``secret`` is read from the raw JSON (the official SDK's model drops it) and
handed back wrapped in :class:`Minted`, whose repr never shows it.
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.aio import backoff_s
from sidecar.credentials.slot import Credentials
from sidecar.errors import SidecarError
from sidecar.gate.clock import Clock
from sidecar.gate.ratelimits import Bucket, take
from sidecar.gate.signing import HmacSigner, signed_headers
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest

PREFIX = "/api/v4/sub_accounts"
PROBE_PATH = "/api/v4/account/detail"  # a signed read every managed key may make


class Step(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    REFUSED = "refused"


def next_step(status: int | None) -> Step:
    """Pure: what to do after an answer (``None``: no answer at all, a transport failure)."""
    if status is None or status == 429 or status >= 500:
        return Step.RETRY
    if status >= 400:
        return Step.REFUSED
    return Step.DONE


class GateError(Exception):
    """A call Gate refused (``status``, ``label``), or that kept failing (``status`` None or
    5xx/429). Messages name the call and Gate's label, never a header or a secret."""

    def __init__(self, message: str, status: int | None, label: str | None) -> None:
        super().__init__(message)
        self.status, self.label = status, label

    @property
    def transient(self) -> bool:
        return next_step(self.status) is Step.RETRY


@dataclass(frozen=True)
class Minted:
    """A key Gate just created: its object and, in memory only, its secret."""

    key: str
    doc: dict[str, Any]
    secret: str = field(repr=False)

    def credentials(self) -> Credentials:
        return Credentials(self.key, HmacSigner(self.secret), "minted")


@dataclass
class Limiter:
    """One token bucket for every call to the sub-account endpoints."""

    capacity: int = 80
    window_s: float = 10.0
    now: Callable[[], float] = time.monotonic
    _bucket: Bucket | None = None

    async def acquire(self) -> None:
        while True:
            taken = take(self._bucket, self.capacity, self.capacity / self.window_s, self.now())
            self._bucket = taken.bucket
            if taken.allowed:
                return
            await asyncio.sleep(taken.retry_after_s)


def _label(doc: Any) -> str | None:
    label = doc.get("label") if isinstance(doc, dict) else None
    return label if isinstance(label, str) else None


class GateKeys:
    """The sub-account key calls; ``main`` gives the main key's current credentials."""

    def __init__(
        self,
        forwarder: Forwarder,
        main: Callable[[], Credentials],
        *,
        clock: Clock | None = None,
        limiter: Limiter | None = None,
        retry_for_s: float = 60.0,
        on_retry: Callable[[str, str], None] | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.main = main
        self.clock = clock or Clock()
        self.limiter = limiter or Limiter()
        self.retry_for_s = retry_for_s
        self.on_retry = on_retry  # (what, why): counted by the metrics
        self.calls = 0

    async def _once(
        self, creds: Credentials, method: str, path: str, body: bytes
    ) -> tuple[int | None, Any]:
        await self.limiter.acquire()
        self.calls += 1
        auth = await signed_headers(
            creds.signer, creds.api_key, method, path, "", body, self.clock.now()
        )
        headers = [("Accept", "application/json"), *auth.items()]
        if body:
            headers.append(("Content-Type", "application/json"))
        try:
            resp = await self.forwarder.send(UpstreamRequest(method, path, "", headers, body))
        except SidecarError:
            return None, None
        return resp.status, resp.json()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        creds: Credentials | None = None,
        retry: bool = True,
    ) -> tuple[int, Any]:
        """(status, JSON) of a successful call; :class:`GateError` otherwise."""
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        what = f"{method} {path}"
        deadline = time.monotonic() + self.retry_for_s
        failures = 0
        while True:
            status, doc = await self._once(creds or self.main(), method, path, raw)
            step = next_step(status)
            if step is Step.DONE:
                assert status is not None
                return status, doc
            why = "no answer" if status is None else f"HTTP {status} {_label(doc) or ''}".strip()
            if step is Step.REFUSED or not retry or time.monotonic() >= deadline:
                raise GateError(f"{what}: {why}", status, _label(doc))
            failures += 1
            if self.on_retry is not None:
                self.on_retry(what, why)
            await asyncio.sleep(
                min(backoff_s(failures, 5.0), max(0.0, deadline - time.monotonic()))
            )

    # -- the endpoints -------------------------------------------------------------------------
    async def create(self, user_id: int, body: dict[str, Any]) -> Minted:
        _, doc = await self.call("POST", f"{PREFIX}/{user_id}/keys", body)
        key = doc.get("key") if isinstance(doc, dict) else None
        secret = doc.pop("secret", None) if isinstance(doc, dict) else None
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            raise GateError(
                f"POST {PREFIX}/{user_id}/keys: no key and secret in the answer", 200, None
            )
        return Minted(key, doc, secret)

    async def list(self, user_id: int) -> list[dict[str, Any]]:
        _, doc = await self.call("GET", f"{PREFIX}/{user_id}/keys")
        return [k for k in doc if isinstance(k, dict)] if isinstance(doc, list) else []

    async def get(self, user_id: int, key: str) -> dict[str, Any] | None:
        try:
            _, doc = await self.call("GET", f"{PREFIX}/{user_id}/keys/{key}")
        except GateError as exc:
            if exc.status == 404:
                return None
            raise
        return doc if isinstance(doc, dict) else None

    async def replace(self, user_id: int, key: str, body: dict[str, Any]) -> None:
        await self.call("PUT", f"{PREFIX}/{user_id}/keys/{key}", body)

    async def delete(self, user_id: int, key: str) -> bool:
        """Delete ``key``; False when Gate has no such key (already gone: done all the same)."""
        try:
            await self.call("DELETE", f"{PREFIX}/{user_id}/keys/{key}")
        except GateError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def lock(self, user_id: int, *, locked: bool) -> None:
        await self.call("POST", f"{PREFIX}/{user_id}/{'lock' if locked else 'unlock'}")

    async def probe(self, minted: Minted) -> tuple[int | None, str | None]:
        """One signed read with the new key itself (no retry): (status, Gate's label)."""
        status, doc = await self._once(minted.credentials(), "GET", PROBE_PATH, b"")
        return status, _label(doc)
