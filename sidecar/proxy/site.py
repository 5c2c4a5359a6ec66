"""What a listener's connections serve: the seam between the connection layer and what answers.

:class:`~sidecar.proxy.lean_listener.LeanServer` owns every connection of a listener (parsing,
the ``server:`` limits, refusals, deadlines, the answer's bytes); what it serves is a
:class:`Site`, which only answers whole requests and records what happened. Two kinds exist:

- :class:`KeySite`: a key's listener (the pipeline: admission, policy, signing, forwarding;
  WebSocket sessions; connections held against their client token);
- :class:`sidecar.ops.admin.AdminSite`: the admin listener's routes (health, readiness,
  metrics, the cancel-only switch), with no WebSocket and no client token.

So both listeners get the same connection code, the same limits and the same refusals.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from sidecar.errors import SidecarError
from sidecar.gate.head import Kinds
from sidecar.proxy.client_tokens import CLIENTS
from sidecar.proxy.peer import Peer
from sidecar.proxy.pipeline import BotRequest, BotResponse, KeyRuntime, finish, new_record, respond
from sidecar.proxy.record import RequestRecord
from sidecar.proxy.ws.bot import BotSocket, handshake
from sidecar.proxy.ws.handler import serve_ws
from sidecar.proxy.ws.runtime import WsRuntime

#: Answers a WebSocket upgrade ``101`` with these headers and reads frames (up to a message
#: size) from then on: the connection's side of an upgrade.
Switch = Callable[[list[tuple[str, str]], int], BotSocket]


class Site(Protocol):
    """What a listener serves, as its connections see it."""

    @property
    def name(self) -> str:
        """For log lines: the key's name, or ``admin``."""
        ...

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def kinds(self) -> Kinds:
        """How each request header is read and whether it is forwarded (the one pass over a
        head: :func:`sidecar.gate.head.read_request_head`)."""
        ...

    @property
    def ws(self) -> WsRuntime | None:
        """WebSocket sessions; None: an upgrade request is served as an ordinary request."""
        ...

    def hold(
        self, headers: Iterable[tuple[str, str]], revoked: Callable[[], object]
    ) -> Callable[[], None] | None:
        """Hold a kept-alive connection against the client token in ``headers`` (``revoked`` is
        called once the token is no longer admitted); the call that forgets it, or None when
        nothing is held."""
        ...

    def respond(
        self, request: BotRequest
    ) -> Coroutine[Any, Any, tuple[BotResponse, RequestRecord | None]]:
        """The answer to a whole request, and its record for :meth:`finish` once the answer is
        written (None: nothing to record)."""
        ...

    def finish(self, record: RequestRecord | None, status: int) -> None:
        """Hand a request's record to the observers (audit line, metrics), after its answer."""
        ...

    def refused(self, error: SidecarError, method: str, target: str, peer: Peer) -> None:
        """Record a refusal the connection layer made (``target``: a canonical path or ``-``)."""
        ...

    async def websocket(self, request: BotRequest, switch: Switch) -> None:
        """Serve a WebSocket upgrade (only when :attr:`ws` is set); a SidecarError before the
        ``101`` refuses it."""
        ...


class KeySite:
    """A key's listener: the request pipeline of one :class:`KeyRuntime`."""

    __slots__ = ("runtime",)

    def __init__(self, runtime: KeyRuntime) -> None:
        self.runtime = runtime

    @property
    def name(self) -> str:
        return self.runtime.name

    @property
    def max_body_bytes(self) -> int:
        return self.runtime.max_body_bytes

    @property
    def kinds(self) -> Kinds:
        return self.runtime.admission.kinds  # the key's forward_headers included; per reload

    @property
    def ws(self) -> WsRuntime | None:
        return self.runtime.ws

    def hold(
        self, headers: Iterable[tuple[str, str]], revoked: Callable[[], object]
    ) -> Callable[[], None] | None:
        return CLIENTS.hold(self.runtime, headers, revoked)

    def respond(
        self, request: BotRequest
    ) -> Coroutine[Any, Any, tuple[BotResponse, RequestRecord | None]]:
        # The pipeline's own coroutine, not one wrapped in another: no frame more per request.
        return respond(self.runtime, request)

    def finish(self, record: RequestRecord | None, status: int) -> None:
        if record is not None:
            finish(self.runtime, record, status)

    def refused(self, error: SidecarError, method: str, target: str, peer: Peer) -> None:
        record = new_record(self.runtime, method, target, peer)
        record.label = error.label
        finish(self.runtime, record, error.status)

    async def websocket(self, request: BotRequest, switch: Switch) -> None:
        runtime = self.runtime
        ws = runtime.ws
        assert ws is not None  # an upgrade is a WebSocket only for keys with sessions
        # The same admission as REST: a browser page opening a WebSocket to a key's listener
        # (cross-site WebSocket hijacking) is refused before anything reaches Gate.
        runtime.admission.check(request.head(runtime.admission.kinds), request.peer)
        accept = handshake(request.headers)
        await serve_ws(
            request.target,
            request.headers,
            request.peer.client_cert,
            runtime,
            ws,
            lambda limit: switch(accept, limit),
        )
