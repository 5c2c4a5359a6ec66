"""The key self-check: ask Gate what a key may do, at start and after each rotation.

``GET /api/v4/account/main_keys``, signed with the key itself, answers its permissions and IP
whitelist; :func:`sidecar.policy.keyscope.judge` compares them with the key's policy. A key wider
than its policy needs is held (its listener answers 503, /readyz says why) and an error line
says exactly what to change on Gate; the check runs again every minute, so fixing the key on
Gate heals the sidecar without a restart. A rotated pair is checked before it is installed
(:attr:`sidecar.credentials.rotation.Rotation.vet`): a wide new key never signs, the old one keeps
serving. When Gate cannot be asked (network trouble), the key stays held as *pending* and the
check retries with backoff: with ``self_check: true`` nothing is signed unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sidecar.aio import backoff_s
from sidecar.credentials.rotation import CanaryResult
from sidecar.credentials.slot import Credentials, KeySlot, fingerprint
from sidecar.credentials.sources.base import Source
from sidecar.errors import SidecarError
from sidecar.gate.clock import Clock
from sidecar.gate.signing import signed_headers
from sidecar.policy.engine import Policy
from sidecar.policy.keyscope import judge
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest

log = logging.getLogger("sidecar.selfcheck")

PATH = "/api/v4/account/main_keys"
RECHECK_S = 60.0  # a refused key is asked about again this often
IDLE_S = 1.0  # how often the loop looks for a newly installed pair


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str
    definitive: bool  # False: Gate could not be asked; try again soon


class SelfCheck:
    def __init__(self, policy: Policy, forwarder: Forwarder, clock: Clock) -> None:
        self.policy = policy
        self.forwarder = forwarder
        self.clock = clock
        self._wake = asyncio.Event()

    async def ask(self, creds: Credentials) -> Verdict:
        auth = await signed_headers(
            creds.signer, creds.api_key, "GET", PATH, "", b"", self.clock.now()
        )
        headers = [("Accept", "application/json"), *auth.items()]
        try:
            resp = await self.forwarder.send(UpstreamRequest("GET", PATH, "", headers, b""))
        except SidecarError as exc:
            return Verdict(False, f"cannot ask Gate ({exc.message})", False)
        if resp.status >= 500:
            return Verdict(False, f"cannot ask Gate (HTTP {resp.status})", False)
        if resp.status != 200:
            label = resp.gate_label() or "no label"
            return Verdict(
                False,
                f"Gate refused {PATH} (HTTP {resp.status} {label}): on Gate, give the key "
                "read access to 'account' so that it can be checked",
                True,
            )
        doc = resp.json()
        if isinstance(doc, list):  # one entry per key: this key's own
            doc = next(
                (d for d in doc if isinstance(d, dict) and d.get("key") == creds.api_key), None
            )
        scope = judge(self.policy, doc)
        return Verdict(scope.ok, "; ".join(scope.problems) or "ok", True)

    async def vet(self, name: str, creds: Credentials) -> CanaryResult:
        """The rotation hook: a rotated pair is installed only if it passes."""
        verdict = await self.ask(creds)
        return CanaryResult(verdict.ok, verdict.detail)

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def run(self, slot: KeySlot) -> None:
        """Hold ``slot`` until its pair passes; check every newly installed pair."""
        checked: tuple[str, str] | None = None
        failures = 0
        said = ""
        while True:
            creds = slot.credentials
            ident = None if creds is None else (fingerprint(creds.api_key), creds.version)
            if creds is None or ident == checked:
                await self._sleep(IDLE_S)
                continue
            try:
                verdict = await self.ask(creds)
            except Exception:  # a bug here must not end the loop (the key would stay held)
                log.exception("self-check crashed", extra={"key": slot.name})
                verdict = Verdict(False, "internal error in the self-check", False)
            if verdict.ok:
                slot.release()
                checked, failures, said = ident, 0, ""
                log.info("self-check passed", extra={"key": slot.name, "version": creds.version})
                continue
            if verdict.definitive:
                slot.hold(f"self-check refused the key: {verdict.detail}")
                if verdict.detail != said:  # once per distinct verdict, not every minute
                    log.error(
                        "self-check refused the key; change it on Gate",
                        extra={"key": slot.name, "change_on_gate": verdict.detail},
                    )
                    said = verdict.detail
                await self._sleep(RECHECK_S)
            else:
                failures += 1
                slot.hold(f"self-check pending: {verdict.detail}")
                await self._sleep(backoff_s(failures, 30.0))


class SelfCheckedSource(Source):
    """A key's source plus its self-check, run and stopped together as one task."""

    kind = "self-checked"

    def __init__(self, inner: Source, check: SelfCheck) -> None:
        super().__init__(inner.slot, inner.rotation)
        self.inner = inner
        self.check = check
        self.loaded = inner.loaded
        self.attempted = inner.attempted
        inner.slot.hold("self-check pending: no pair checked yet")

    async def poll(self) -> None:  # pragma: no cover - run() drives the inner source
        await self.inner.poll()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.inner.run())
            tasks.create_task(self.check.run(self.slot))

    def refresh_now(self) -> None:
        self.inner.refresh_now()
        self.check.wake()

    async def close(self) -> None:
        await self.inner.close()
