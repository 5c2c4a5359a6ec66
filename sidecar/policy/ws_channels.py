"""WebSocket channels as the REST endpoints whose permission they need: one table. Pure.

A private channel subscription reads what a REST ``GET`` reads; a trading-API call does what its
REST twin does. Each frame is decided by the key's ordinary :class:`~sidecar.policy.engine.Policy`
on its REST twin, so every preset, allow, deny and locked rule applies to WebSocket frames exactly
as to REST requests (``read-only`` may watch orders but not place them; ``futures-only`` never
reaches a ``spot.*`` channel; ``spot-only``'s account condition reads ``spot.order_place``'s
``req_param.account``).

Channel names: Gate's WebSocket v4 docs (spot, futures, delivery, options) and the SDKs'
private-topic lists (gateio-api ``websocket-util``, gate-ws ``spot.py``/``futures.py``). Delivery
connections use the ``futures.*`` names for their private channels; their REST twins live under
``/delivery/{settle}``. Gate's trading API exists on spot and perpetual futures only: its
delivery and options docs have none, and the live delivery endpoint answers ``futures.order_place``
as a channel that does not exist (thrasher-corp/gocryptotrader#2174). So a trading-API frame on a
delivery or options connection finds no rule here and is refused, never signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sidecar.policy.engine import Decision, Policy
from sidecar.policy.origin import NO_RULE

PRODUCTS = ("spot", "futures", "delivery", "options")
# A trading-API call naming one order becomes a request to this stand-in segment: the policy
# decides on the endpoint, and a bot's id must never shape the path a rule is matched against.
ORDER_ID_SEGMENT = "ws-order"


class Kind(Enum):
    PRIVATE = "private channel"  # subscribe/unsubscribe gets a signed `auth`
    API = "trading API"  # event "api": payload.api_key/timestamp/signature


@dataclass(frozen=True)
class ChannelRule:
    channel: str
    kind: Kind
    method: str
    path: str  # under the product's REST base: {base}; {id} is one order
    # A private channel whose payload names markets: the twin's query parameter that names one
    # (its guards read it), so ``instruments`` judges the subscription as it judges the twin.
    scope: str | None = None


_SPOT = "/api/v4/spot"
_MARGIN = "/api/v4/margin"
_SPOT_RULES = (
    ChannelRule("spot.orders", Kind.PRIVATE, "GET", f"{_SPOT}/orders", "currency_pair"),
    ChannelRule("spot.usertrades", Kind.PRIVATE, "GET", f"{_SPOT}/my_trades", "currency_pair"),
    ChannelRule("spot.balances", Kind.PRIVATE, "GET", f"{_SPOT}/accounts"),
    ChannelRule("spot.margin_balances", Kind.PRIVATE, "GET", f"{_MARGIN}/accounts"),
    ChannelRule("spot.funding_balances", Kind.PRIVATE, "GET", f"{_MARGIN}/funding_accounts"),
    ChannelRule("spot.cross_balances", Kind.PRIVATE, "GET", f"{_MARGIN}/cross/accounts"),
    ChannelRule("spot.priceorders", Kind.PRIVATE, "GET", f"{_SPOT}/price_orders", "market"),
    ChannelRule("spot.cross_loan", Kind.PRIVATE, "GET", f"{_MARGIN}/cross/loans"),
    # Logging in is what every later call needs; it grants nothing by itself, so it needs only
    # a read of the product (futures-only may not log in on the spot API).
    ChannelRule("spot.login", Kind.API, "GET", f"{_SPOT}/orders"),
    ChannelRule("spot.order_place", Kind.API, "POST", f"{_SPOT}/orders"),
    ChannelRule("spot.order_cancel", Kind.API, "DELETE", f"{_SPOT}/orders/{{id}}"),
    ChannelRule("spot.order_cancel_ids", Kind.API, "POST", f"{_SPOT}/cancel_batch_orders"),
    ChannelRule("spot.order_cancel_cp", Kind.API, "DELETE", f"{_SPOT}/orders"),
    ChannelRule("spot.order_amend", Kind.API, "PATCH", f"{_SPOT}/orders/{{id}}"),
    ChannelRule("spot.order_status", Kind.API, "GET", f"{_SPOT}/orders/{{id}}"),
    ChannelRule("spot.order_list", Kind.API, "GET", f"{_SPOT}/orders"),
)

_FUTURES_RULES = (
    ChannelRule("futures.orders", Kind.PRIVATE, "GET", "{base}/orders", "contract"),
    ChannelRule("futures.usertrades", Kind.PRIVATE, "GET", "{base}/my_trades", "contract"),
    ChannelRule("futures.balances", Kind.PRIVATE, "GET", "{base}/accounts"),
    ChannelRule("futures.positions", Kind.PRIVATE, "GET", "{base}/positions", "contract"),
    ChannelRule("futures.autoorders", Kind.PRIVATE, "GET", "{base}/price_orders", "contract"),
    ChannelRule("futures.liquidates", Kind.PRIVATE, "GET", "{base}/liquidates", "contract"),
    ChannelRule(
        "futures.auto_deleverages", Kind.PRIVATE, "GET", "{base}/auto_deleverages", "contract"
    ),
    ChannelRule(
        "futures.position_closes", Kind.PRIVATE, "GET", "{base}/position_close", "contract"
    ),
    ChannelRule("futures.reduce_risk_limits", Kind.PRIVATE, "GET", "{base}/positions", "contract"),
    ChannelRule("futures.login", Kind.API, "GET", "{base}/orders"),
    ChannelRule("futures.order_place", Kind.API, "POST", "{base}/orders"),
    ChannelRule("futures.order_batch_place", Kind.API, "POST", "{base}/batch_orders"),
    ChannelRule("futures.order_cancel", Kind.API, "DELETE", "{base}/orders/{id}"),
    ChannelRule("futures.order_cancel_ids", Kind.API, "POST", "{base}/batch_cancel_orders"),
    ChannelRule("futures.order_cancel_cp", Kind.API, "DELETE", "{base}/orders"),
    ChannelRule("futures.order_amend", Kind.API, "PUT", "{base}/orders/{id}"),
    ChannelRule("futures.order_status", Kind.API, "GET", "{base}/orders/{id}"),
    ChannelRule("futures.order_list", Kind.API, "GET", "{base}/orders"),
)

_OPTIONS_RULES = (
    ChannelRule("options.orders", Kind.PRIVATE, "GET", "{base}/orders", "contract"),
    ChannelRule("options.usertrades", Kind.PRIVATE, "GET", "{base}/my_trades", "contract"),
    ChannelRule("options.liquidates", Kind.PRIVATE, "GET", "{base}/position_close", "contract"),
    ChannelRule(
        "options.user_settlements", Kind.PRIVATE, "GET", "{base}/my_settlements", "contract"
    ),
    ChannelRule(
        "options.position_closes", Kind.PRIVATE, "GET", "{base}/position_close", "contract"
    ),
    ChannelRule("options.balances", Kind.PRIVATE, "GET", "{base}/accounts"),
    ChannelRule("options.positions", Kind.PRIVATE, "GET", "{base}/positions", "contract"),
)

# product -> (REST base, its channel rules by name)
TABLE: dict[str, tuple[str, dict[str, ChannelRule]]] = {
    "spot": (_SPOT, {r.channel: r for r in _SPOT_RULES}),
    "futures": ("/api/v4/futures/{settle}", {r.channel: r for r in _FUTURES_RULES}),
    "delivery": (
        "/api/v4/delivery/{settle}",
        {r.channel: r for r in _FUTURES_RULES if r.kind is Kind.PRIVATE},
    ),
    "options": ("/api/v4/options", {r.channel: r for r in _OPTIONS_RULES}),
}


# Public channels (market data, no key): Gate's WebSocket v4 docs for each product, and the
# names the SDKs use (gate-ws ``spot.py``/``futures.py``, ccxt ``pro/gate.py``). Delivery
# connections use the futures names. Anything else is refused: the sidecar relays only what it
# can name.
_SPOT_PUBLIC = (
    "tickers", "trades", "trades_v2", "candlesticks", "book_ticker", "order_book",
    "order_book_update", "obu",
)  # fmt: skip
_FUTURES_PUBLIC = (
    "tickers", "trades", "candlesticks", "book_ticker", "order_book", "order_book_update",
    "obu", "public_liquidates", "contract_stats",
)  # fmt: skip
_OPTIONS_PUBLIC = (
    "contract_tickers", "ul_tickers", "contract_trades", "ul_trades", "ul_price", "mark_price",
    "settlements", "contracts", "contract_candlesticks", "ul_candlesticks", "order_book",
    "order_book_update", "book_ticker",
)  # fmt: skip
PUBLIC: dict[str, frozenset[str]] = {
    "spot": frozenset(f"spot.{name}" for name in _SPOT_PUBLIC),
    "futures": frozenset(f"futures.{name}" for name in _FUTURES_PUBLIC),
    "delivery": frozenset(f"futures.{name}" for name in _FUTURES_PUBLIC),
    "options": frozenset(f"options.{name}" for name in _OPTIONS_PUBLIC),
}
# What a connection's channel names start with (a delivery connection speaks futures.*).
PREFIX = {"spot": "spot", "futures": "futures", "delivery": "futures", "options": "options"}


class FrameKind(Enum):
    """What one bot frame is, by its channel and event: the relay's whole table."""

    PING = "ping"  # {prefix}.ping with no event: answered by Gate, relayed as sent
    PUBLIC = "public"  # (un)subscription to market data: relayed as sent
    PRIVATE = "private"  # (un)subscription to a private channel: decided, then signed
    API = "api"  # event "api": decided, guarded, charged, then signed
    UNKNOWN = "unknown"  # anything else: refused


def frame_kind(product: str, channel: str, event: str | None) -> FrameKind:
    """The kind of a frame naming ``channel`` and ``event`` (None: no event field)."""
    if event is None:
        return FrameKind.PING if channel == f"{PREFIX[product]}.ping" else FrameKind.UNKNOWN
    if event == "api":
        return FrameKind.API  # the policy refuses a channel of no trading-API rule
    if event not in ("subscribe", "unsubscribe"):
        return FrameKind.UNKNOWN
    rule = channel_rule(product, channel)
    if rule is not None and rule.kind is Kind.PRIVATE:
        return FrameKind.PRIVATE
    return FrameKind.PUBLIC if channel in PUBLIC[product] else FrameKind.UNKNOWN


UNNAMED = "?"  # what records say of a channel or event the table does not name


def known_name(product: str, channel: str, event: str | None) -> tuple[str, str]:
    """``channel`` and ``event`` for a record (an audit line, a metric), each only if the table
    names it: a bot's arbitrary text never reaches a log line."""
    known = (
        channel in TABLE[product][1]
        or channel in PUBLIC[product]
        or channel == f"{PREFIX[product]}.ping"
    )
    event_known = event is None or event in ("subscribe", "unsubscribe", "api")
    return (channel if known else UNNAMED), ((event or "") if event_known else UNNAMED)


def channel_rule(product: str, channel: str) -> ChannelRule | None:
    """The rule for a channel on a product's connection; None for a public (or unknown) one."""
    return TABLE[product][1].get(channel)


def rest_path(product: str, settle: str, rule: ChannelRule) -> str:
    base = TABLE[product][0].replace("{settle}", settle)
    return rule.path.replace("{base}", base).replace("{id}", ORDER_ID_SEGMENT)


LOGIN_CHANNELS = frozenset({"spot.login", "futures.login"})


def budget_twin(product: str, settle: str, channel: str) -> tuple[str, str] | None:
    """The REST request whose rate budget a trading-API call spends: its REST twin's method and
    path. None for a login (a session's handshake, no API call) and for a channel that is not a
    trading-API call of this connection (the policy refuses those first)."""
    rule = channel_rule(product, channel)
    if rule is None or rule.kind is not Kind.API or channel in LOGIN_CHANNELS:
        return None
    return rule.method, rest_path(product, settle, rule)


UNKNOWN_API = "not a trading-API channel of this connection"


def decide_frame(
    policy: Policy, product: str, settle: str, channel: str, kind: Kind, body: bytes
) -> Decision:
    """The key's policy on the REST twin of one frame. ``body`` is the forwarded ``req_param``
    text for a trading-API call (what the body conditions read), empty for a subscription."""
    rule = channel_rule(product, channel)
    if rule is None or rule.kind is not kind:
        # Only a trading-API call can reach here unmapped: a channel nobody can judge is refused
        # rather than signed.
        if not any(r.kind is Kind.API for r in TABLE[product][1].values()):
            why = f"Gate has no trading API on {product} connections"
        else:
            why = f"{channel[:64]!r} is {UNKNOWN_API}"
        return Decision(False, UNKNOWN_API, why, NO_RULE)
    return policy.decide(rule.method, rest_path(product, settle, rule), "", body)


def channel_table() -> list[tuple[str, str, str, str, str]]:
    """(connections, channel, kind, REST twin, the twin's market parameter) rows, for the docs:
    a channel of both futures and delivery connections is one row, its twin written for
    futures."""
    rows = []
    for product in ("spot", "futures", "options"):
        base, rules = TABLE[product]
        for rule in rules.values():
            shared = product == "futures" and rule.channel in TABLE["delivery"][1]
            twin = rule.path.replace("{base}", base).replace("{id}", "{order_id}")
            where = "futures, delivery" if shared else product
            scope = f"`{rule.scope}`" if rule.scope else ""
            rows.append((where, rule.channel, rule.kind.value, f"{rule.method} {twin}", scope))
    return rows


def channel_markdown() -> str:
    lines = [
        "| Connection | Channel | Kind | Needs the permission of | Payload markets as |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {p} | `{c}` | {k} | `{t}` | {m} |" for p, c, k, t, m in channel_table()]
    return "\n".join(lines)


def public_markdown() -> str:
    """The public channels the relay passes, per connection, for the docs."""
    lines = ["| Connection | Public channels (and `{prefix}.ping` with no event) |", "|---|---|"]
    for where, product in (
        ("spot", "spot"),
        ("futures, delivery", "futures"),
        ("options", "options"),
    ):
        names = ", ".join(f"`{c}`" for c in sorted(PUBLIC[product]))
        lines.append(f"| {where} | {names} |")
    return "\n".join(lines)
