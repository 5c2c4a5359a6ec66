"""Checks on the query and the JSON body, for rules the path alone cannot decide. Pure.

A body is parsed at most once per request, and only when something needs it: the request holds
one :class:`Body`, which the policy's conditions and the trading guards
(:mod:`sidecar.policy.guards`) both read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl


class _NoBody:
    """The parsed body of a request that has none (empty or only whitespace)."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY = _NoBody()


class InvalidBody(Exception):
    """The body cannot be checked; the message says why (and never quotes the body)."""


def reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Decoders disagree on which copy of a repeated key wins; refuse rather than guess.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise InvalidBody("the JSON body repeats a key")
    return doc


def parse_body(body: bytes) -> object:
    """The parsed JSON body, NO_BODY, or an :class:`InvalidBody` (returned, not raised)."""
    if not body.strip():
        return NO_BODY
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=reject_duplicate_keys)
    except InvalidBody as exc:
        return exc
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return InvalidBody("the body is not valid UTF-8 JSON, so it cannot be checked")


class Body:
    """A request body, parsed on first use and never again (the policy and the guards share it)."""

    __slots__ = ("_doc", "raw")

    _UNPARSED = object()

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._doc: object = Body._UNPARSED

    @property
    def doc(self) -> object:
        """The parsed JSON, NO_BODY, or an :class:`InvalidBody` (see :func:`parse_body`)."""
        if self._doc is Body._UNPARSED:
            self._doc = parse_body(self.raw)
        return self._doc


@dataclass(frozen=True)
class Condition:
    """A check on the query and the JSON body, for rules the path alone cannot decide."""

    text: str  # shown in tables, check-config and docs
    refusal: Callable[[str, object], str | None]  # (raw query, parsed body | NO_BODY) -> why not


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 32 else text[:29] + "..."


def _spot_account(query_value: str) -> Callable[[str, object], str | None]:
    """The spot account check; ``query_value`` is what a query ``account`` must say."""

    def refusal(raw_query: str, doc: object) -> str | None:
        # Margin, cross-margin and unified orders go through the very same /spot paths; only the
        # `account` field tells them apart (Gate docs: "Create an order"). Keys are compared
        # case-insensitively because some JSON decoders (Go's encoding/json) bind `Account` to
        # the `account` field. Only the exact value passes.
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            if name.casefold() == "account" and value != query_value:
                return f"query account={_short(value)} is not the spot account"
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            if not isinstance(item, dict):
                continue
            for key, value in item.items():
                folded = key.casefold()
                if folded == "account" and value != "spot":
                    return f"body account {_short(value)} is not the spot account"
                if folded == "put" and isinstance(value, dict):
                    # Price-triggered orders: `put.account` is `normal` for spot
                    # (SpotPricePutOrder; ccxt sends "normal" for spot trigger orders).
                    for put_key, put_value in value.items():
                        if put_key.casefold() == "account" and put_value != "normal":
                            return f"body put.account {_short(put_value)} is not normal (spot)"
        return None

    return refusal


SPOT_ACCOUNT = Condition("spot account only", _spot_account("spot"))
# Price-triggered orders call the spot account `normal`, in the query too (ccxt's
# cancelAllOrders with trigger=True sends `DELETE /spot/price_orders?account=normal`).
SPOT_PRICE_ACCOUNT = Condition("spot account only (account=normal)", _spot_account("normal"))
