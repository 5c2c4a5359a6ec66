"""The exchange's in-memory state: keys, clock, orders and a record of every request."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict


@dataclass
class RecordedRequest:
    method: str
    raw_path: str  # exactly as received: never normalised
    raw_query: str
    headers: CIMultiDict[str]
    body: bytes
    api_key: str | None
    verdict: str = "pending"  # "ok", "public", or the error label
    timestamp: float = field(default_factory=time.time)


@dataclass
class Account:
    secret: str
    uid: int
    spot_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    futures_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    leverage: dict[str, str] = field(default_factory=dict)


class ExchangeState:
    def __init__(self, clock_offset_s: float = 0.0, window_s: float = 60.0) -> None:
        self.clock_offset_s = clock_offset_s  # the exchange's clock minus the local clock
        self.window_s = window_s
        self.accounts: dict[str, Account] = {}
        self.requests: list[RecordedRequest] = []
        self.delays: dict[str, float] = {}  # raw path -> seconds before answering
        self._ids = itertools.count(1000)
        self._uids = itertools.count(10001)

    def now(self) -> float:
        return time.time() + self.clock_offset_s

    def add_key(self, api_key: str, secret: str, *, uid: int | None = None) -> None:
        self.accounts[api_key] = Account(secret, uid if uid is not None else next(self._uids))

    def remove_key(self, api_key: str) -> None:
        self.accounts.pop(api_key, None)

    def next_id(self) -> str:
        return str(next(self._ids))

    def verified(self, api_key: str | None = None) -> list[RecordedRequest]:
        """Requests that passed signature verification (optionally for one key)."""
        return [
            r
            for r in self.requests
            if r.verdict == "ok" and (api_key is None or r.api_key == api_key)
        ]
