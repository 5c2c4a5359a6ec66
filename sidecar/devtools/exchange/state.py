"""The exchange's in-memory state: keys, clock, orders, rate windows and a record of requests."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from sidecar.devtools.exchange.subaccounts import SubAccounts

RATE_WINDOW_S = 10.0  # Gate counts most private limits per 10 s (API v4 docs, "Rate Limit")
RATE_LIMIT = 200  # "others 200 per 10 s": the figure reported in X-Gate-RateLimit-Limit


@dataclass
class RecordedRequest:
    method: str
    raw_path: str  # exactly as received: never normalised
    raw_query: str
    headers: CIMultiDict[str]  # a case-insensitive copy, duplicates kept
    body: bytes
    api_key: str | None  # the KEY header as sent (None when absent)
    verdict: str = "pending"  # "ok", "public", or the error label
    timestamp: float = field(default_factory=time.time)  # local receive time


@dataclass
class RecordedFrame:
    """One WebSocket frame a client sent the exchange, as received."""

    raw_path: str
    text: str
    channel: str | None
    event: str | None
    api_key: str | None  # the key the frame was signed with, as sent (None when unsigned)
    verdict: str = "pending"  # "ok" (signature verified), "public", or the error label
    timestamp: float = field(default_factory=time.time)


@dataclass
class Account:
    secret: str = field(repr=False)  # never in a repr: tests print state on failure
    uid: int
    spot_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    futures_orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # "settle/id" keys
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)  # "settle/contract" keys
    leverage: dict[str, str] = field(default_factory=dict)  # "margin/BTC_USDT", "unified/BTC"
    # What GET /account/main_keys answers for this key (None: every permission, no whitelist).
    key_info: dict[str, Any] | None = None


@dataclass
class RateWindow:
    """Requests per (caller, path) in fixed windows, for Gate's X-Gate-RateLimit-* headers."""

    limit: int = RATE_LIMIT
    window_s: float = RATE_WINDOW_S
    _counts: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def hit(self, caller: str, path: str, now: float) -> tuple[int, float]:
        """Count one request; return (remaining, window reset time in seconds)."""
        slot = int(now // self.window_s)
        if len(self._counts) > 10_000:  # bounded: old windows are dropped wholesale
            self._counts = {k: v for k, v in self._counts.items() if k[2] == slot}
        key = (caller, path, slot)
        self._counts[key] = self._counts.get(key, 0) + 1
        return self.limit - self._counts[key], (slot + 1) * self.window_s


class ExchangeState:
    def __init__(self, clock_offset_s: float = 0.0, window_s: float = 60.0) -> None:
        self.clock_offset_s = clock_offset_s  # the exchange's clock minus the local clock
        self.window_s = window_s  # allowed |Timestamp - exchange now|
        self.accounts: dict[str, Account] = {}
        self.requests: list[RecordedRequest] = []
        # raw path (or "ws:<channel>" for the trading API) -> seconds before answering
        self.delays: dict[str, float] = {}
        self.rates = RateWindow()
        self.ws_frames: list[RecordedFrame] = []  # every WebSocket frame received
        self.ws_connections: set[Any] = set()  # open WebSocket connections (ws_app.Conn)
        # Off by default: many tests hammer one path far beyond Gate's real limits.
        self.enforce_rate_limit = False
        # Countdown cancel-all (sidecar.devtools.exchange.countdown): Gate's minimum timeout,
        # which tests may lower; the running countdowns by (api key, scope); those that fired.
        self.countdown_min_s: float = 5.0
        self.countdowns: dict[tuple[str, str], Any] = {}
        self.countdowns_fired: list[Any] = []
        self.sub_accounts = SubAccounts()  # sub-account API keys (handlers_subaccounts)
        self._ids = itertools.count(1000)
        self._uids = itertools.count(10001)

    def now(self) -> float:
        """The exchange's clock: what Timestamp is checked against and what Date reports."""
        return time.time() + self.clock_offset_s

    def add_key(self, api_key: str, secret: str, *, uid: int | None = None) -> None:
        self.accounts[api_key] = Account(secret, uid if uid is not None else next(self._uids))

    def set_key_info(
        self,
        api_key: str,
        perms: dict[str, bool],
        ip_whitelist: list[str] | None = None,
        state: int = 1,
    ) -> None:
        """What ``GET /account/main_keys`` says of this key: ``perms`` maps each permission
        name to whether it is read-only (Gate's AccountKeyInfo)."""
        self.accounts[api_key].key_info = {
            "state": state,
            "ip_whitelist": list(ip_whitelist or []),
            "perms": [{"name": n, "read_only": ro} for n, ro in perms.items()],
        }

    def remove_key(self, api_key: str) -> None:
        self.accounts.pop(api_key, None)

    def secrets(self) -> dict[str, str]:
        return {key: account.secret for key, account in self.accounts.items()}

    def next_id(self) -> int:
        return next(self._ids)

    def verified(self, api_key: str | None = None) -> list[RecordedRequest]:
        """Requests that passed signature verification (optionally for one key)."""
        return [
            r
            for r in self.requests
            if r.verdict == "ok" and (api_key is None or r.api_key == api_key)
        ]
