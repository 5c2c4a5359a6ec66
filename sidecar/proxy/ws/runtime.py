"""What one key's listener needs to serve WebSocket sessions, next to its REST runtime."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

from sidecar.credentials.watch import CredentialWatch
from sidecar.proxy.ws.record import FrameObserver, WsStats
from sidecar.proxy.ws.upstream import WsUpstream
from sidecar.proxy.ws_settings import KeyWsConfig


class Closable(Protocol):
    """A running session, as the key's runtime knows it (sidecar.proxy.ws.session.Session)."""

    async def close(self, code: int, reason: str) -> None: ...


_session_numbers = itertools.count(1)


@dataclass
class WsShared:
    """What every key's WebSocket runtime shares: one per sidecar."""

    upstream: WsUpstream
    watch: CredentialWatch
    observers: list[FrameObserver] = field(default_factory=list)  # changed in place, never rebound

    def for_key(self, settings: KeyWsConfig) -> WsRuntime:
        return WsRuntime(settings, self.upstream, self.watch, self.observers)


@dataclass
class WsRuntime:
    """A reload replaces ``settings`` in place; sessions read it when they need it."""

    settings: KeyWsConfig
    upstream: WsUpstream  # shared by every key
    watch: CredentialWatch  # shared by every key: rotation and revocation events by key name
    observers: list[FrameObserver] = field(default_factory=list)  # shared by reference
    stats: WsStats = field(default_factory=WsStats)
    sessions: set[Closable] = field(default_factory=set)

    @staticmethod
    def next_number() -> int:
        return next(_session_numbers)
