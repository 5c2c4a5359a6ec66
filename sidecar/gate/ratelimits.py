"""Gate's published rate limits per endpoint group, and the token-bucket arithmetic. Pure.

The limits are per account (UID) and come from Gate's API v4 documentation, "Rate Limit"
(v4.105): spot place/amend 10 r/s, cancel 200 r/s, other spot calls 200 per 10 s; perpetual
futures place/amend 100 r/s, cancel 200 r/s, others 200 per 10 s; delivery place 500 per 10 s;
options place 200 r/s; ``POST /withdrawals`` 1 per 3 s, transfers 80 per 10 s, other wallet calls
200 per 10 s; any other private endpoint 150 per 10 s each; public endpoints 200 per 10 s each
(per IP). Where Gate counts per market (spot place/amend) or per endpoint, a group marked
``per_endpoint`` keeps one bucket per endpoint *template*
(``GET /api/v4/options/orders/{order_id}``, from :mod:`sidecar.gate.endpoints`), so a new id
per request is the same endpoint, as it is to Gate; a path the catalogue does not know shares
one bucket with every other such path. The spot order group keeps one bucket for every market
together. Both are stricter than Gate, never looser.

A bucket holds up to ``limit`` tokens and regains ``limit / per_s`` per second; a request takes
one. :func:`take` and :func:`tighten` are the one definition of that arithmetic: the local store
runs them as they are and the Redis store's script (``sidecar.proxy.budget.redis_store``) is
tested against them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from sidecar.gate.endpoints import template_for
from sidecar.gate.public import is_public


@dataclass(frozen=True)
class Group:
    name: str
    limit: int  # requests ...
    per_s: float  # ... per this many seconds
    routes: tuple[tuple[frozenset[str], re.Pattern[str]], ...]
    per_endpoint: bool = False  # one bucket per endpoint template instead of one for the group
    public: bool = False  # matches Gate's public market data (sidecar.gate.public)
    text: str = ""  # the endpoints, as docs and check-config show them

    def matches(self, method: str, path: str) -> bool:
        if self.public:
            return is_public(method, path)
        return any(
            ("*" in methods or method in methods) and pattern.fullmatch(path)
            for methods, pattern in self.routes
        )


def _group(
    name: str, limit: int, per_s: float, routes: str, *, per_endpoint: bool = False
) -> Group:
    """``routes``: ``METHOD path-regex`` pairs separated by ``;`` (paths after /api/v4)."""
    parsed = []
    for item in routes.split(";"):
        methods, path = item.split()
        parsed.append((frozenset(methods.split(",")), re.compile("/api/v4" + path)))
    text = routes.replace(";", "; ").replace("(/[^/]+)?", "[/{id}]").replace("(/.*)?", "[/**]")
    text = text.replace("[^/]+", "*").replace(".*", "**")
    return Group(name, limit, per_s, tuple(parsed), per_endpoint, text=text)


_ID = "[^/]+"
#: In matching order: the first group that matches a request is its group.
GATE_GROUPS: tuple[Group, ...] = (
    _group("wallet-withdraw", 1, 3.0, "POST /withdrawals"),
    _group(
        "wallet-transfer",
        80,
        10.0,
        "POST /wallet/transfers;POST /wallet/sub_account_transfers;"
        "POST /wallet/sub_account_to_sub_account",
    ),
    _group(
        "spot-order-place",
        10,
        1.0,
        f"POST /spot/orders;POST /spot/batch_orders;PATCH /spot/orders/{_ID};"
        "POST /spot/amend_batch_orders;POST /spot/price_orders",
    ),
    _group(
        "spot-order-cancel",
        200,
        1.0,
        f"DELETE /spot/orders(/{_ID})?;POST /spot/cancel_batch_orders;"
        f"DELETE /spot/price_orders(/{_ID})?;POST /spot/countdown_cancel_all",
    ),
    _group(
        "futures-order-place",
        100,
        1.0,
        f"POST /futures/{_ID}/orders;POST /futures/{_ID}/batch_orders;"
        f"PUT /futures/{_ID}/orders/{_ID};POST /futures/{_ID}/batch_amend_orders;"
        f"POST /futures/{_ID}/price_orders;PUT /futures/{_ID}/price_orders/{_ID}",
    ),
    _group(
        "futures-order-cancel",
        200,
        1.0,
        f"DELETE /futures/{_ID}/orders(/{_ID})?;POST /futures/{_ID}/batch_cancel_orders;"
        f"DELETE /futures/{_ID}/price_orders(/{_ID})?;POST /futures/{_ID}/countdown_cancel_all",
    ),
    _group(
        "delivery-order-place",
        500,
        10.0,
        f"POST /delivery/{_ID}/orders;POST /delivery/{_ID}/price_orders",
    ),
    _group("options-order-place", 200, 1.0, "POST /options/orders"),
    Group("public", 200, 10.0, (), per_endpoint=True, public=True, text="public market data"),
    _group("spot-other", 200, 10.0, "* /spot/.*"),
    _group("futures-other", 200, 10.0, "* /futures/.*"),
    _group("wallet-other", 200, 10.0, "* /wallet/.*;* /withdrawals(/.*)?"),
    _group("other-private", 150, 10.0, "* /.*", per_endpoint=True),
)
GROUPS_BY_NAME = {g.name: g for g in GATE_GROUPS}


def group_for(method: str, path: str) -> Group:
    """The group a request counts against (``other-private`` catches everything)."""
    return next(g for g in GATE_GROUPS if g.matches(method, path))


UNLISTED = "(unlisted)"


def bucket_scope(group: Group, method: str, path: str) -> str:
    """Which bucket of ``group`` a request takes from: "" for the group's one bucket; for a
    per-endpoint group, the endpoint's template (``GET /api/v4/options/orders/*``: the braces
    become ``*`` so that no Redis Cluster hash tag is formed), or ``(unlisted)`` for a path the
    catalogue does not know: never the concrete path, which a bot could vary at will."""
    if not group.per_endpoint:
        return ""
    template = template_for(method, path)
    if template is None:
        return UNLISTED
    return template.method + " " + "/".join("*" if s is None else s for s in template.segments)


# -- token buckets -----------------------------------------------------------------------------


# Bucket and Take are named tuples rather than frozen dataclasses: as immutable, and cheaper to
# make (a frozen dataclass sets each field through object.__setattr__); the memory store makes
# one of each per request.
class Bucket(NamedTuple):
    """A bucket's state: ``tokens`` as of ``at`` (seconds on the store's clock)."""

    tokens: float
    at: float


class Take(NamedTuple):
    allowed: bool
    bucket: Bucket
    retry_after_s: float  # 0 when allowed; else when the next token is there


# A named tuple's generated ``__new__`` is a Python function: building the two records of a take
# through it cost more than the arithmetic. ``tuple.__new__`` makes the same objects in C.
_new = tuple.__new__


def refill(bucket: Bucket | None, capacity: float, rate: float, now: float) -> float:
    if bucket is None:
        return capacity
    return min(capacity, bucket.tokens + max(0.0, now - bucket.at) * rate)


def take(bucket: Bucket | None, capacity: float, rate: float, now: float) -> Take:
    """One request against a bucket of ``capacity`` tokens regaining ``rate`` per second."""
    # refill() inlined, with comparisons instead of min() and max(): this runs on every request
    # of a budgeted key, and the calls were a third of its time.
    if bucket is None:
        tokens = capacity
    else:
        tokens, at = bucket
        if now > at:
            tokens += (now - at) * rate
        if tokens > capacity:
            tokens = capacity
    if tokens >= 1.0:
        return _new(Take, (True, _new(Bucket, (tokens - 1.0, now)), 0.0))
    return _new(Take, (False, _new(Bucket, (tokens, now)), (1.0 - tokens) / rate))


def tighten(
    bucket: Bucket | None,
    capacity: float,
    rate: float,
    now: float,
    remaining: int,
    reset_in_s: float | None,
) -> Bucket:
    """Gate says ``remaining`` requests are left (and the window resets in ``reset_in_s``):
    never hold more tokens than that; with none left, the next token comes at the reset."""
    tokens = refill(bucket, capacity, rate, now)
    if remaining > 0:
        target = float(remaining)
    elif reset_in_s is not None:
        target = 1.0 - max(0.0, reset_in_s) * rate  # one token exactly when Gate resets
    else:
        target = 0.0
    return Bucket(min(tokens, target), now)


# Gate's WebSocket trading API puts its count in each answer's ``header`` (docs, "Order Place"
# result format; the reset field is spelled ``x_gat_`` there, ``x_gate_`` in some examples).
# The count and the cap are "hidden if 0": a cap without a count means none remain.
_WS_REMAIN = "x_gate_ratelimit_requests_remain"
_WS_LIMIT = "x_gate_ratelimit_limit"
_WS_RESET = ("x_gat_ratelimit_reset_timestamp", "x_gate_ratelimit_reset_timestamp")


def ws_rate_headers(answer: object) -> list[tuple[str, str]] | None:
    """A WebSocket trading-API answer's rate-limit fields as the REST headers that carry the
    same facts (``X-Gate-RateLimit-Requests-Remain``, ``-Reset-Timestamp``); None without any."""
    header = answer.get("header") if isinstance(answer, dict) else None
    if not isinstance(header, dict):
        return None
    remain, cap = header.get(_WS_REMAIN), header.get(_WS_LIMIT)
    if remain is None and cap is None:
        return None
    out = [("X-Gate-RateLimit-Requests-Remain", str(0 if remain is None else remain))]
    reset = next((header[name] for name in _WS_RESET if name in header), None)
    if reset is not None:
        out.append(("X-Gate-RateLimit-Reset-Timestamp", str(reset)))
    return out


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds (RFC 9110 delta-seconds), never early."""
    return str(max(1, math.ceil(seconds - 1e-9)))


def groups_markdown() -> str:
    """Gate's groups and limits as a Markdown table (docs/guards.md shows it)."""
    lines = ["| Group | Gate's limit | Scope | Endpoints |", "|---|---|---|---|"]
    for g in GATE_GROUPS:
        scope = "per endpoint" if g.per_endpoint else "whole group"
        routes = g.text if g.public else "; ".join(f"`{r}`" for r in g.text.split("; "))
        lines.append(f"| `{g.name}` | {g.limit} per {g.per_s:g} s | {scope} | {routes} |")
    return "\n".join(lines)
