"""``settle`` and ``instruments`` for WebSocket logins and private (un)subscriptions. Pure.

A private channel reads what its REST twin reads (:mod:`sidecar.policy.ws_channels`), so the
key's guards judge a subscription as that twin: once per market its payload names (the twin's
query parameter, ``?contract=ETH_USD``), and once with no market for ``"!all"`` or a payload
naming none, which concerns every market (``allow_unscoped`` decides, as for a REST listing).
The connection URL's settle (``/v4/ws/btc``) is the twin's ``{settle}``.

A login is a session's handshake: it names no market (the calls after it are judged one by one),
so only ``settle`` applies to it; a ``futures.login`` on ``/v4/ws/btc`` is refused to a key whose
``settle`` is ``[usdt]``.

With ``instruments`` set, a market named in a payload that the twin's guards do not read is
refused rather than let through unchecked.
"""

from __future__ import annotations

from urllib.parse import quote

from sidecar.policy.conditions import Body
from sidecar.policy.guards import Call, Guards, Refusal
from sidecar.policy.guards.kinds import Op, Product, Shape
from sidecar.policy.guards.reading import Named
from sidecar.policy.ws_channels import ChannelRule, rest_path

ALL = "!all"  # Gate's "every market" in a private channel's payload
_SETTLED = (Product.FUTURES, Product.DELIVERY)
_NO_BODY = Body(b"")
# A subscription's twin is a GET: the template only names writes no guard reads.


def payload_markets(rule: ChannelRule, payload: object) -> tuple[list[str], bool] | str:
    """The markets a private (un)subscription's payload names, and whether it concerns every
    market (``"!all"``, or none named); a string says why the payload cannot be read.

    Spot payloads list currency pairs; futures, delivery and options payloads may start with the
    user id (digits, or a JSON number), which names no market."""
    if payload is None:
        return [], True
    if not isinstance(payload, list):
        return "the payload of a private channel is not a JSON list"
    spot = rule.channel.startswith("spot.")
    names: list[str] = []
    unscoped = False
    for item in payload:
        if isinstance(item, bool) or not isinstance(item, str | int):
            return "the payload of a private channel holds something other than names"
        if isinstance(item, int) or (not spot and item.isdigit()):
            if spot:
                return "the payload of a spot channel holds a number"
            continue  # the user id
        if item == ALL:
            unscoped = True
        else:
            names.append(item)
    return names, unscoped or not names


def subscription_refusal(
    guards: Guards, product: str, settle: str, rule: ChannelRule, event: str, payload: object
) -> Refusal | None:
    """The refusal of a private channel's ``subscribe``/``unsubscribe`` by the key's ``settle``
    and ``instruments`` guards, judged on its REST twin; None when it passes."""
    if not guards.active:
        return None
    label = f"{event} {rule.channel}"
    path = rest_path(product, settle, rule)
    if rule.scope is None:  # an account-wide channel: its twin takes no market
        return _named(
            label, path, guards.check(guards.http_call("GET", path, "", _NO_BODY, template=None))
        )
    markets = payload_markets(rule, payload)
    if isinstance(markets, str):
        return Refusal("order_shape", f"{label}: {markets}")
    names, unscoped = markets
    queries = [f"{rule.scope}={quote(name, safe='')}" for name in names]
    for name, query in zip([*names, None], [*queries, ""], strict=True):
        if query == "" and not unscoped:
            continue
        call = guards.http_call("GET", path, query, _NO_BODY, template=None)
        refusal = guards.check(call)
        if refusal is not None:
            return _named(label, path, refusal)
        if name is not None and guards.limits.instruments is not None:
            read = call.all_instruments() if isinstance(call, Call) else []
            if name not in {n.value for n in read}:
                return Refusal(
                    "instruments",
                    f"{label}: its REST twin GET {path} does not read {rule.scope}, so the "
                    "market it names cannot be checked against instruments",
                )
    return None


def login_refusal(guards: Guards, product: str, settle: str, channel: str) -> Refusal | None:
    """The refusal of a ``*.login`` by the key's ``settle`` guard (the connection URL's settle);
    None when it passes."""
    if not guards.active or not settle or Product(product) not in _SETTLED:
        return None
    call = Call(
        Shape(Product(product), Op.OTHER),
        channel,
        settle=Named(settle, "the connection URL"),
    )
    return guards.check(call)


def _named(label: str, path: str, refusal: Refusal | None) -> Refusal | None:
    if refusal is None:
        return None
    return Refusal(refusal.guard, f"{label} (as GET {path}): {refusal.message}")
