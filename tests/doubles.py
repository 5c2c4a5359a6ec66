"""Test doubles that keep the sidecar's own contracts, for tests that need no real network."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sidecar.errors import UpstreamUnavailable
from sidecar.ops.status import KeyStatus
from sidecar.proxy.forwarder import UpstreamRequest, UpstreamResponse
from sidecar.vault.session import VaultStatus

#: What the double's upstream does with a request: answer it, or raise UpstreamUnavailable (or
#: its StaleConnection), UpstreamTooLarge or UpstreamTimeout as a network forwarder would.
Upstream = Callable[[UpstreamRequest], Awaitable[UpstreamResponse]]


class MemoryForwarder:
    """A :class:`~sidecar.proxy.forwarder.Forwarder` that calls ``upstream`` in process.

    It keeps the contract itself (sent once, errors, nothing after close), so the contract suite in
    tests/test_forward_contract.py runs against it like any other implementation, and tests can
    inject it with ``running(config, forwarder=MemoryForwarder(...))``.
    """

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.sent: list[UpstreamRequest] = []
        self.closed = False

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self.closed:
            raise UpstreamUnavailable("the forwarder is closed")
        self.sent.append(request)
        return await self.upstream(request)  # once: resending is sidecar.proxy.forwarder.deliver's

    async def close(self) -> None:
        self.closed = True


class StubView:
    """A :class:`~sidecar.ops.status.SidecarView` of a sidecar with no keys, no clock sync and no
    Vault session; tests override what they need."""

    def key_statuses(self) -> list[KeyStatus]:
        return []

    @property
    def clock_offset_s(self) -> float:
        return 0.0

    def clock_sync_counts(self) -> tuple[int, int] | None:
        return None

    def vault_status(self) -> VaultStatus | None:
        return None
