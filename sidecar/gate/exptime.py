"""Order expiry: Gate's ``x-gate-exptime`` header, which calls take it and what value to send. Pure.

``x-gate-exptime`` is a timestamp in epoch milliseconds on Gate's clock after which Gate refuses
the request instead of placing it late. The official SDK (gate-api 7.2) takes it on
``SpotApi.create_order``, ``create_batch_orders``, ``amend_order``, ``amend_batch_orders`` and
``FuturesApi.create_futures_order``, ``create_batch_futures_order``, ``create_futures_bbo_order``,
``amend_futures_order``, ``amend_batch_future_orders`` (and on cancels, which the sidecar never
stamps: a late cancel is still wanted); the WebSocket trading API takes it as
``req_header.x-gate-exptime``.

With ``guards.order_ttl_ms`` the sidecar stamps each such call with Gate's now (the
skew-corrected clock) plus the TTL: :func:`stamped` keeps a bot's own earlier deadline and
lowers a later one; a value it cannot read is refused, since Gate would read it its own way.
"""

from __future__ import annotations

import re

HEADER = "x-gate-exptime"

# REST calls that take the header: (method, path pattern).
_REST = tuple(
    (method, re.compile(pattern))
    for method, pattern in (
        ("POST", r"/api/v4/spot/orders"),
        ("POST", r"/api/v4/spot/batch_orders"),
        ("PATCH", r"/api/v4/spot/orders/[^/]+"),
        ("POST", r"/api/v4/spot/amend_batch_orders"),
        ("POST", r"/api/v4/futures/[^/]+/orders"),
        ("POST", r"/api/v4/futures/[^/]+/batch_orders"),
        ("POST", r"/api/v4/futures/[^/]+/bbo_orders"),
        ("PUT", r"/api/v4/futures/[^/]+/orders/[^/]+"),
        ("POST", r"/api/v4/futures/[^/]+/batch_amend_orders"),
    )
)

#: WebSocket trading-API channels that take ``req_header.x-gate-exptime``.
WS_CHANNELS = frozenset(
    {
        "spot.order_place",
        "spot.order_amend",
        "futures.order_place",
        "futures.order_batch_place",
        "futures.order_amend",
    }
)

_DIGITS = re.compile(r"[0-9]{1,16}")


class BadExptime(ValueError):
    """A bot's ``x-gate-exptime`` the sidecar cannot read for certain."""


def takes_exptime(method: str, path: str) -> bool:
    """Whether Gate reads ``x-gate-exptime`` on this REST call."""
    return any(m == method and p.fullmatch(path) for m, p in _REST)


def parse_exptime(value: object) -> int:
    """A bot's value: epoch milliseconds as digits (a JSON number or a string of digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    raise BadExptime("x-gate-exptime must be epoch milliseconds (digits)")


def stamped(gate_now_ms: int, ttl_ms: int, given: object | None) -> int:
    """The deadline to send: Gate's now + the TTL, or the bot's own value if it is earlier.
    Raises :class:`BadExptime` for a bot's value that is not epoch milliseconds."""
    deadline = gate_now_ms + ttl_ms
    if given is None:
        return deadline
    return min(parse_exptime(given), deadline)
