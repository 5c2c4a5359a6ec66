"""Client authentication for the life of a connection, not only at its first request.

A WebSocket session is admitted once, at its upgrade, and a kept-alive REST connection carries
request after request. When the client token file (``keys[].client_auth.token_file``) changes, a
connection opened with a token that is no longer in it must not go on: every
``keys[].client_auth.recheck_s`` seconds (default :data:`RECHECK_S`; with several keys, the
shortest of those holding connections) the sidecar re-reads each key's token file (only when it
changed: :class:`~sidecar.proxy.admission.TokenFile`) and closes every connection held with a
token that no longer matches it (or with none, when a reload gave the listener a token file),
writing an audit line for each. A WebSocket session is closed with :data:`CLOSE_CODE` (4401,
"client token revoked", after HTTP's 401); a kept-alive REST connection is closed once its
answer in flight is written.

Listeners register a connection with :meth:`ClientTokens.hold` (its ``revoked`` callback writes
the audit line and closes it) and get back the call that forgets it. The token offered is kept
only inside the held entry, never in a repr or a message. One :data:`CLIENTS` registry serves
the process; its check runs only while something is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from sidecar.proxy.admission import TOKEN_HEADER, Admission

log = logging.getLogger("sidecar.proxy")

RECHECK_S = 2.0  # the default of client_auth.recheck_s
CLOSE_CODE = 4401  # WebSocket close code of a session whose client token was revoked
CLOSE_REASON = "client token revoked"


class Admitted(Protocol):
    """What the check reads of a key (:class:`sidecar.proxy.pipeline.KeyRuntime` is one): its
    current admission, swapped whole on a reload."""

    @property
    def admission(self) -> Admission: ...


def offered_token(headers: Iterable[tuple[str, str]]) -> str | None:
    """The ``X-Sidecar-Token`` value admission read (the last one given)."""
    offered: str | None = None
    for name, value in headers:
        if name.lower() == TOKEN_HEADER:
            offered = value
    return offered


class _Held:
    __slots__ = ("key", "offered", "revoked")

    def __init__(self, key: Admitted, offered: str | None, revoked: Callable[[], object]) -> None:
        self.key, self.offered, self.revoked = key, offered, revoked

    def __repr__(self) -> str:  # the token stays out of every repr
        return "<connection held with a client token>"

    def admitted(self, seen: dict[tuple[int, str | None], bool]) -> bool:
        token = self.key.admission.token
        if token is None:  # the listener takes no token now: nothing to revoke
            return True
        ident = (id(token), self.offered)
        if ident not in seen:
            seen[ident] = token.matches(self.offered)
        return seen[ident]


class ClientTokens:
    """Connections held with a client token, and the periodic check that closes revoked ones."""

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._held)

    def hold(
        self,
        key: Admitted,
        headers: Iterable[tuple[str, str]],
        revoked: Callable[[], object],
    ) -> Callable[[], None] | None:
        """Hold a connection whose request carried ``headers``; ``revoked`` (an audit line, then
        the close) is called once their token is no longer admitted. Returns the call that
        forgets the connection, or None when the token is not admitted now (the request is
        refused with a 401 by admission, and nothing is held)."""
        entry = _Held(key, offered_token(headers), revoked)
        if not entry.admitted({}):
            return None
        ident = id(entry)
        self._held[ident] = entry
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._task = loop.create_task(self._run(), name="client-token-check")
        return lambda: self._release(ident)

    def _release(self, ident: int) -> None:
        self._held.pop(ident, None)
        if not self._held and self._task is not None:
            self._task.cancel()  # nothing to check: no task outlives the last connection
            self._task = None

    def check(self) -> int:
        """Close every held connection whose token is no longer admitted; how many were."""
        seen: dict[tuple[int, str | None], bool] = {}
        revoked = [(i, e) for i, e in list(self._held.items()) if not e.admitted(seen)]
        for ident, entry in revoked:
            self._held.pop(ident, None)
            try:
                entry.revoked()
            except Exception:
                log.exception("closing a connection whose client token was revoked failed")
        return len(revoked)

    def interval_s(self) -> float:
        """The shortest ``client_auth.recheck_s`` of the keys holding connections now."""
        return min((e.key.admission.recheck_s for e in self._held.values()), default=RECHECK_S)

    async def _run(self) -> None:
        while self._held:
            await asyncio.sleep(self.interval_s())
            try:
                self.check()
            except Exception:  # one bad pass never stops the next
                log.exception("checking held connections against the client token failed")


CLIENTS = ClientTokens()
