"""Test doubles that keep the sidecar's own contracts, for tests that need no real network."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sidecar.errors import UpstreamUnavailable
from sidecar.proxy.forwarder import UpstreamRequest, UpstreamResponse

#: What the double's upstream does with a request: answer it, or raise UpstreamUnavailable /
#: UpstreamTimeout as a network forwarder would.
Upstream = Callable[[UpstreamRequest], Awaitable[UpstreamResponse]]


class Dropped(UpstreamUnavailable):
    """The upstream's connection failed before any answer (a network forwarder's keep-alive
    connection closing under it): the one failure after which a GET may be sent again."""

    def __init__(self) -> None:
        super().__init__("Gate connection failed: the connection dropped")


class MemoryForwarder:
    """A :class:`~sidecar.proxy.forwarder.Forwarder` that calls ``upstream`` in process.

    It keeps the contract itself (retries, errors, nothing after close), so the contract suite in
    tests/test_forward_contract.py runs against it like any other implementation, and tests can
    inject it with ``create_app(config, forwarder=MemoryForwarder(...))``.
    """

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.sent: list[UpstreamRequest] = []
        self.closed = False

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        attempts = 2 if request.method == "GET" else 1
        for attempt in range(1, attempts + 1):
            if self.closed:
                raise UpstreamUnavailable("the forwarder is closed")
            self.sent.append(request)
            try:
                return await self.upstream(request)
            except Dropped:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self.closed = True
