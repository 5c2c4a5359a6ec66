"""Gate's countdown cancel-all and order expiry, on the exchange's own order book.

- ``POST /spot/countdown_cancel_all`` ``{timeout, currency_pair?}``,
  ``POST /futures/{settle}/countdown_cancel_all`` ``{timeout, contract?}`` and
  ``POST /options/countdown_cancel_all`` ``{timeout, contract?, underlying?}`` (gate-api:
  ``CountdownCancelAllSpotTask``, ``CountdownCancelAllFuturesTask``,
  ``CountdownCancelAllOptionsTask``; the answer is ``TriggerTime`` ``{"triggerTime": ms}``).
  ``timeout`` is whole seconds, at least 5 (:attr:`ExchangeState.countdown_min_s`, which tests may
  lower: ``--countdown-min-s``), 0 disarms; a new call replaces the running countdown of the
  same key and product. When one runs out, every open order of that product (of that market,
  when one was named) is cancelled, for real: REST lists it as cancelled afterwards.
- ``x-gate-exptime`` (REST header) and ``req_header.x-gate-exptime`` (WebSocket trading API):
  epoch milliseconds after which the request is refused; checked on the exchange's clock when
  the request is handled, so a request held back (``state.delays``) past it is never executed.
  Gate documents the refusal but not its label; the exchange answers ``400 REQUEST_EXPIRED``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.devtools.exchange.calls import ApiError, Call, Result, invalid, obj_body
from sidecar.devtools.exchange.state import Account, ExchangeState

GATE_MIN_TIMEOUT_S = 5


@dataclass
class Countdown:
    scope: str  # "spot", "futures/usdt", "options"
    market: str | None  # currency_pair / contract, when one was named
    fires_at: float  # the exchange's clock
    handle: asyncio.TimerHandle


@dataclass(frozen=True)
class Fired:
    api_key: str
    scope: str
    at: float  # the exchange's clock
    cancelled: int


def _timeout(state: ExchangeState, body: Mapping[str, Any]) -> int:
    value = body.get("timeout")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("timeout must be an integer number of seconds")
    if value != 0 and value < state.countdown_min_s:
        raise invalid(f"timeout must be 0 or at least {state.countdown_min_s:g}")
    return value


def _cancel_open(state: ExchangeState, account: Account, scope: str, market: str | None) -> int:
    now = state.now()
    count = 0
    if scope == "spot":
        for order in account.spot_orders.values():
            if order["status"] == "open" and market in (None, order["currency_pair"]):
                order.update(status="cancelled", finish_as="cancelled",
                             update_time=str(int(now)), update_time_ms=int(now * 1000))  # fmt: skip
                count += 1
    elif scope.startswith("futures/"):
        prefix = scope.removeprefix("futures/") + "/"
        for key, order in account.futures_orders.items():
            if key.startswith(prefix) and order["status"] == "open":
                if market in (None, order["contract"]):
                    order.update(status="finished", finish_as="cancelled",
                                 finish_time=round(now, 3), update_time=round(now, 3))  # fmt: skip
                    count += 1
    return count  # options: the exchange keeps no options orders


def _arm(call: Call, scope: str, market_field: str) -> Result:
    state, body = call.state, obj_body(call)
    timeout = _timeout(state, body)
    market = body.get(market_field)
    if market is not None and not isinstance(market, str):
        raise invalid(f"{market_field} must be a string")
    api_key = next(k for k, a in state.accounts.items() if a is call.acct)
    slot = (api_key, scope)
    running = state.countdowns.pop(slot, None)
    if running is not None:
        running.handle.cancel()
    if timeout == 0:
        return 200, {"triggerTime": 0}
    account = call.acct

    def fire() -> None:
        if state.countdowns.get(slot) is not countdown:
            return
        del state.countdowns[slot]
        cancelled = _cancel_open(state, account, scope, market)
        state.countdowns_fired.append(Fired(api_key, scope, state.now(), cancelled))

    loop = asyncio.get_running_loop()
    fires_at = state.now() + timeout
    countdown = Countdown(scope, market or None, fires_at, loop.call_later(timeout, fire))
    state.countdowns[slot] = countdown
    return 200, {"triggerTime": int(fires_at * 1000)}


def spot_countdown(call: Call) -> Result:
    return _arm(call, "spot", "currency_pair")


def futures_countdown(call: Call) -> Result:
    return _arm(call, f"futures/{call.params['settle']}", "contract")


def options_countdown(call: Call) -> Result:
    return _arm(call, "options", "contract")


def expired(state: ExchangeState, value: object) -> ApiError | None:
    """The refusal of a request whose ``x-gate-exptime`` has passed (None: in time, or none)."""
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        return invalid("x-gate-exptime must be epoch milliseconds")
    now_ms = state.now() * 1000
    if now_ms > int(text):
        late = now_ms - int(text)
        return ApiError(
            400, "REQUEST_EXPIRED", f"request expired {late:.0f} ms ago (x-gate-exptime)"
        )
    return None
