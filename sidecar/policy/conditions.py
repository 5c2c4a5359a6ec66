"""Checks on the query and the JSON body, for rules the path alone cannot decide. Pure.

A body is parsed at most once per request, and only when something needs it: the request holds
one :class:`Body`, which the policy's conditions and the trading guards
(:mod:`sidecar.policy.guards`) both read.
"""

from __future__ import annotations

import json
import re
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


# Gate's parameter and field names are snake_case ASCII. Under a rule that reads a field, a name
# outside this set (`account[]`, a NUL, a `;`-joined pair) might be read as `account` by Gate's
# decoder and not by ours: refuse rather than guess.
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]+")


def _unreadable_query(raw_query: str) -> str | None:
    if ";" in raw_query:
        return "the query has a ';' (some servers split parameters on it), so it cannot be checked"
    for name, _ in parse_qsl(raw_query, keep_blank_values=True):
        if not _FIELD_NAME.fullmatch(name):
            return f"query parameter {_short(name)} cannot be read for certain"
    return None


def _unreadable_fields(item: dict[str, object], nested: frozenset[str]) -> str | None:
    for key, value in item.items():
        if not _FIELD_NAME.fullmatch(key):
            return f"body field {_short(key)} cannot be read for certain"
        if isinstance(value, dict | list) and key.casefold() not in nested:
            return f"body field {_short(key)} holds a nested object or list"
    return None


def _account_refusal(item: dict[str, object], expected: str, where: str) -> str | None:
    """The account check on one JSON object: ``account`` must be ``expected`` if present, and
    ``auto_borrow`` needs it present (on a unified account an order that borrows is a margin
    order, whatever the path says)."""
    account: object = None
    borrows = False
    for key, value in item.items():
        folded = key.casefold()
        if folded == "account":
            if value != expected:
                return f"body {where}account {_short(value)} is not the spot account"
            account = value
        elif folded == "auto_borrow" and value is not None and value is not False:
            borrows = True
    if borrows and account is None:
        return f"body {where}auto_borrow needs an explicit {where}account {expected!r}"
    return None


def _spot_account(
    query_value: str, nested: frozenset[str] = frozenset({"put"})
) -> Callable[[str, object], str | None]:
    """The spot account check; ``query_value`` is what a query ``account`` must say, ``nested``
    the fields that may hold an object (``put``, whose ``account`` must be ``normal``)."""

    def refusal(raw_query: str, doc: object) -> str | None:
        # Margin, cross-margin and unified orders go through the very same /spot paths; only the
        # `account` field tells them apart (Gate docs: "Create an order"). Keys are compared
        # case-insensitively because some JSON decoders (Go's encoding/json) bind `Account` to
        # the `account` field. Only the exact value passes, and a shape this check cannot read
        # for certain (odd names, nested batches, wrappers) is refused, not let through.
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            if name.casefold() == "account" and value != query_value:
                return f"query account={_short(value)} is not the spot account"
        unreadable = _unreadable_query(raw_query)
        if unreadable is not None:
            return unreadable
        if doc is NO_BODY or doc is None:  # nothing to read, and nothing Gate would place
            return None
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            if not isinstance(item, dict):
                return "the body is not a JSON object or a list of objects, so it cannot be checked"
            why = _account_refusal(item, "spot", "")
            if why is not None:
                return why
            for key, value in item.items():
                if key.casefold() != "put":
                    continue
                # Price-triggered orders: `put.account` is `normal` for spot
                # (SpotPricePutOrder; ccxt sends "normal" for spot trigger orders).
                if not isinstance(value, dict):
                    return "body put is not a JSON object, so it cannot be checked"
                why = _account_refusal(value, "normal", "put.") or _unreadable_fields(
                    value, frozenset()
                )
                if why is not None:
                    return why
            why = _unreadable_fields(item, nested)
            if why is not None:
                return why
        return None

    return refusal


SPOT_ACCOUNT = Condition("spot account only", _spot_account("spot"))
# Price-triggered orders call the spot account `normal`, in the query too (ccxt's
# cancelAllOrders with trigger=True sends `DELETE /spot/price_orders?account=normal`); their
# `trigger` holds the price condition (no account in it).
SPOT_PRICE_ACCOUNT = Condition(
    "spot account only (account=normal)",
    _spot_account("normal", frozenset({"put", "trigger"})),
)
