"""Trading guards: what an order may look like, beyond which endpoint it may call. Pure.

- :mod:`~sidecar.policy.guards.shapes`: the one field table (endpoint or WebSocket channel ->
  order shape -> the fields each guard reads), in the terms of
  :mod:`~sidecar.policy.guards.kinds`;
- :mod:`~sidecar.policy.guards.reading`: reading a call's orders as the table says;
- :mod:`~sidecar.policy.guards.values`: a key's limits, market quotes, a refusal;
- :mod:`~sidecar.policy.guards.checks`: the guards and their refusal messages;
- :mod:`~sidecar.policy.guards.unread`: writes outside the field table, refused unless harmless
  or opted in (``allow_unread``);
- :mod:`~sidecar.policy.guards.describe`: the field table as documentation.

:class:`Guards` is the entry point. A REST request goes through :meth:`Guards.http_call`, a
WebSocket trading-API frame through :meth:`Guards.ws_call` (channel, settle from the URL,
``req_param``); both give a :class:`Call` that :meth:`Guards.quote_needs` and
:meth:`Guards.check` (or :meth:`Guards.decide`, the same as a :class:`Decision`) read the same
way, so one order is judged alike whatever carried it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from sidecar.policy.conditions import NO_BODY, Body
from sidecar.policy.guards.checks import check_call, check_cancel_only, quote_needs
from sidecar.policy.guards.reading import Ambiguous, Call, Unreadable, read_call
from sidecar.policy.guards.shapes import WS_CHANNELS, Op, Orders, Product, Shape, find_endpoint
from sidecar.policy.guards.unread import Unread, unread_message, unread_write
from sidecar.policy.guards.values import (
    Decision,
    Limits,
    Need,
    Quote,
    QuoteKey,
    Refusal,
    Verdict,
)

__all__ = [
    "Call",
    "Decision",
    "GuardSpec",
    "Guards",
    "Limits",
    "Need",
    "Quote",
    "QuoteKey",
    "Refusal",
    "Verdict",
]

# Any other private call under a settle segment: only the settle guard reads it.
_SETTLED = re.compile(r"/api/v4/(futures|delivery)/(?P<settle>[^/]+)/.+")


class GuardSpec(Protocol):
    """``keys[].guards`` as the config gives it."""

    @property
    def instruments(self) -> Sequence[str] | None: ...
    @property
    def settle(self) -> Sequence[str] | None: ...
    @property
    def allow_unscoped(self) -> bool: ...
    @property
    def max_order_size(self) -> Decimal | None: ...
    @property
    def max_notional(self) -> Decimal | None: ...
    @property
    def max_leverage(self) -> Decimal | None: ...
    @property
    def reduce_only(self) -> bool: ...
    @property
    def order_types(self) -> Sequence[str] | None: ...
    @property
    def time_in_force(self) -> Sequence[str] | None: ...
    @property
    def max_price_deviation_pct(self) -> Decimal | None: ...
    @property
    def allow_unread(self) -> Sequence[str] | None: ...


def _set(values: Sequence[str] | None, fold: bool = False) -> frozenset[str] | None:
    if values is None:
        return None
    return frozenset(v.casefold() if fold else v for v in values)


def limits_from(spec: GuardSpec | None) -> Limits:
    if spec is None:
        return Limits()
    return Limits(
        instruments=_set(spec.instruments),
        settle=_set(spec.settle),
        allow_unscoped=spec.allow_unscoped,
        max_order_size=spec.max_order_size,
        max_notional=spec.max_notional,
        max_leverage=spec.max_leverage,
        reduce_only=spec.reduce_only,
        order_types=_set(spec.order_types, fold=True),
        time_in_force=_set(spec.time_in_force, fold=True),
        max_price_deviation_pct=spec.max_price_deviation_pct,
        allow_unread=_set(spec.allow_unread) or frozenset(),
    )


class Guards:
    """One key's guards, compiled once."""

    def __init__(self, spec: GuardSpec | None) -> None:
        self.limits = limits_from(spec)
        self.active = self.limits.active  # read on every request: computed once

    # -- reading a call ---------------------------------------------------------------------
    def http_call(
        self, method: str, path: str, raw_query: str, body: Body, *, template: str | None
    ) -> Call | Refusal | None:
        """The REST request as a call (None: no guard reads it), or the refusal of a request
        the guards cannot read: a shape they cannot read, a query parameter Gate could read two
        ways, a write outside the field table (``template`` names its endpoint in Gate's
        catalogue, None when Gate publishes none) that is neither harmless nor opted in. The
        body is parsed only when the shape needs it. Public market data
        (``sidecar.gate.public``) is no call of the key's: the caller leaves it out."""
        label = f"{method} {path}"
        endpoint, params = find_endpoint(method, path)
        if endpoint is not None and endpoint.shape.orders is not Orders.UNKNOWN:
            shape = endpoint.shape
        else:
            if method != "GET":
                if unread_write(method, template, self.limits.allow_unread) is Unread.REFUSED:
                    message = unread_message(method, path, template)
                    return Refusal("allow_unread", message, Verdict.UNREAD)
            match = _SETTLED.fullmatch(path)
            if match is None:
                return None
            shape = Shape(Product(match.group(1)), Op.OTHER)
            params = {"settle": match.group("settle")}
        try:
            return read_call(
                shape,
                label,
                path_params=params,
                raw_query=raw_query,
                doc=body.doc if shape.needs_body else NO_BODY,
            )
        except Ambiguous as exc:
            return Refusal("order_shape", f"{label}: {exc}", Verdict.AMBIGUOUS)
        except Unreadable as exc:
            return Refusal("order_shape", f"{label}: {exc}")

    def ws_call(self, channel: str, settle: str | None, req_param: object) -> Call | Refusal | None:
        """A WebSocket trading-API request (``event: "api"``) as a call: ``channel`` such as
        ``futures.order_place``, ``settle`` from the connection URL (None for spot),
        ``req_param`` the parsed JSON. None for a channel no guard reads (login, ping)."""
        shape = WS_CHANNELS.get(channel)
        if shape is None:
            return None
        try:
            # A spot connection has no settle ("" in its endpoint): no settle guard applies.
            return read_call(shape, channel, path_params={}, doc=req_param, settle=settle or None)
        except Unreadable as exc:
            return Refusal("order_shape", f"{channel}: {exc}")

    # -- judging it -------------------------------------------------------------------------
    def quote_needs(self, call: Call) -> dict[QuoteKey, Need]:
        return quote_needs(call, self.limits)

    def check_brake(
        self, call: Call | Refusal | None, *, write: bool, label: str, brake: str | None
    ) -> Refusal | None:
        """The cancel-only brake: ``brake`` says why it is on (None: off); ``write`` whether
        the call changes anything (REST: any method but GET)."""
        if brake is None:
            return None
        return check_cancel_only(
            call if isinstance(call, Call) else None, write=write, label=label, why=brake
        )

    def check(
        self, call: Call | Refusal | None, quotes: Mapping[QuoteKey, Quote] | None = None
    ) -> Refusal | None:
        """Every other guard: the refusal of this call, or None."""
        if not self.active or call is None:
            return None
        if isinstance(call, Refusal):
            return call
        return check_call(call, self.limits, quotes)

    def decide(
        self, call: Call | Refusal | None, quotes: Mapping[QuoteKey, Quote] | None = None
    ) -> Decision:
        """:meth:`check` as a verdict and its reason."""
        return Decision.of(self.check(call, quotes))
