"""The endpoint map as data: the path-glob language, the presets and the locked endpoints.

Globs match the canonical path (see :mod:`sidecar.gate.paths`): ``*`` is exactly one segment, ``**``
zero or more segments, and a ``*`` inside a segment (``sub_account_*``) any run of characters
within that segment. Endpoint facts come from Gate's API v4 documentation (v4.105) and the
official Python SDK's endpoint list (gate-api 7.2.161, ``gate_api/api/*_api.py``).

Pure data and pure functions: no I/O. The config imports ``PRESET_NAMES`` from here, so this
module must not import the config.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

# Every method the Gate API uses, in display order. Anything else is refused by the engine.
METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ANY = frozenset({"*"})
# Gate's own permission model: GET reads, every other method writes. Locked endpoints name
# "every method but GET" rather than a list of write verbs, so an odd verb cannot slip past.
NON_GET = frozenset(METHODS) - {"GET"}

# -- globs -----------------------------------------------------------------------------------

# The characters a canonical path segment may hold (sidecar.gate.paths), plus the wildcard.
_GLOB_SEGMENT = re.compile(r"[A-Za-z0-9_~:,+=@.*-]+")


def validate_glob(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable path glob, or None. For config validation."""
    if not pattern.startswith("/api/v4/"):
        return "must start with /api/v4/"
    for segment in pattern.split("/")[1:]:
        if segment == "":
            return "empty path segment (// or a trailing /)"
        if segment == "**":
            continue
        if "**" in segment:
            return "** must be a whole segment"
        if not _GLOB_SEGMENT.fullmatch(segment):
            return f"segment {segment!r} holds a character no canonical path contains"
        if segment.strip(".") == "":
            return "dot segments (. or ..) never match a canonical path"
    return None


def glob_regex(pattern: str, *, lenient: bool = False) -> re.Pattern[str]:
    """Compile a glob to an anchored regex (use ``fullmatch``).

    ``lenient`` is for rules that *refuse* (deny rules, locked endpoints): they then also catch
    letter-case variants and trailing dots (``/api/v4/Withdrawals.``), spellings that a lenient
    server could route to the same endpoint. Refusing more is safe; allowing more is not, so allow
    rules stay exact.
    """
    out = []
    for segment in pattern.split("/")[1:]:
        if segment == "**":
            out.append("(?:/[^/]+)*")
        elif segment == "*":
            out.append("/[^/]+")
        else:
            body = "[^/]*".join(re.escape(piece) for piece in segment.split("*"))
            out.append("/" + body + (r"\.*" if lenient and not segment.endswith("*") else ""))
    flags = re.ASCII | (re.IGNORECASE if lenient else 0)
    return re.compile("".join(out), flags)


def methods_text(methods: frozenset[str]) -> str:
    if "*" in methods:
        return "*"
    if methods == NON_GET:
        return "non-GET"
    return ",".join(m for m in METHODS if m in methods) or ",".join(sorted(methods))


# -- conditions ------------------------------------------------------------------------------


class _NoBody:
    """The parsed body of a request that has none (empty or only whitespace)."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY = _NoBody()


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

# -- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]  # upper case; "*" = any
    path: str  # glob
    source: str  # shown in denials, audit logs and check-config
    condition: Condition | None = None
    reason: str = ""  # locked endpoints only: why it is locked

    @property
    def text(self) -> str:
        return f"{methods_text(self.methods)} {self.path}"


def _preset(name: str, entries: list[tuple[str, str, Condition | None]]) -> tuple[Rule, ...]:
    rules = []
    for methods, path, condition in entries:
        spec = frozenset(methods.split(","))
        rules.append(Rule(spec, path, f"preset {name}: {methods_text(spec)} {path}", condition))
    return tuple(rules)


# Spot trading writes, enumerated from the SDK's spot_api.py. Left out on purpose:
# POST /spot/cross_liquidate_orders (closes cross-margin positions, not a spot order).
SPOT_WRITES: list[tuple[str, str, Condition | None]] = [
    ("POST", "/api/v4/spot/orders", SPOT_ACCOUNT),
    ("POST", "/api/v4/spot/batch_orders", SPOT_ACCOUNT),
    ("DELETE", "/api/v4/spot/orders", SPOT_ACCOUNT),
    ("DELETE", "/api/v4/spot/orders/*", SPOT_ACCOUNT),
    ("PATCH", "/api/v4/spot/orders/*", SPOT_ACCOUNT),
    ("POST", "/api/v4/spot/cancel_batch_orders", SPOT_ACCOUNT),
    ("POST", "/api/v4/spot/amend_batch_orders", SPOT_ACCOUNT),
    ("POST", "/api/v4/spot/countdown_cancel_all", SPOT_ACCOUNT),
    ("POST", "/api/v4/spot/price_orders", SPOT_PRICE_ACCOUNT),
    ("DELETE", "/api/v4/spot/price_orders", SPOT_PRICE_ACCOUNT),
    ("DELETE", "/api/v4/spot/price_orders/*", SPOT_PRICE_ACCOUNT),
    ("POST", "/api/v4/spot/pov_orders", SPOT_ACCOUNT),
    ("DELETE", "/api/v4/spot/pov_orders", SPOT_ACCOUNT),
    ("DELETE", "/api/v4/spot/pov_orders/*", SPOT_ACCOUNT),
]

SPOT_READS: list[tuple[str, str, Condition | None]] = [("GET", "/api/v4/spot/**", None)]

PRESETS: dict[str, tuple[Rule, ...]] = {
    "read-only": _preset("read-only", [("GET", "/api/v4/**", None)]),
    "spot-only": _preset("spot-only", SPOT_READS + SPOT_WRITES),
    "spot-read-only": _preset("spot-read-only", SPOT_READS),
    "futures-only": _preset("futures-only", [("*", "/api/v4/futures/**", None)]),
    "futures-read-only": _preset("futures-read-only", [("GET", "/api/v4/futures/**", None)]),
    "delivery-only": _preset("delivery-only", [("*", "/api/v4/delivery/**", None)]),
    "options-only": _preset("options-only", [("*", "/api/v4/options/**", None)]),
    "full-trading": _preset("full-trading", [("*", "/api/v4/**", None)]),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)

# -- locked endpoints ------------------------------------------------------------------------

FUNDS_OUT = "moves funds out"
FUNDS_TO_OTHERS = "moves funds to another user"
ESCALATION = "privilege escalation"


def _locked(name: str, path: str, reason: str) -> Rule:
    return Rule(NON_GET, path, f"locked: {name} ({reason})", reason=reason)


# Refused whatever the presets say; opened only by allow_withdrawals plus an explicit rule
# (see sidecar.policy.engine). Whole subtrees rather than single endpoints where Gate groups
# them, so an endpoint Gate adds later under the same prefix is locked until someone decides
# otherwise.
# Order matters only for the name a denial shows: the UID push precedes the withdrawals subtree.
LOCKED: tuple[Rule, ...] = (
    _locked("UID transfer", "/api/v4/withdrawals/push", FUNDS_TO_OTHERS),
    _locked("withdrawals", "/api/v4/withdrawals/**", FUNDS_OUT),
    _locked("sub-account transfers", "/api/v4/wallet/sub_account_*/**", FUNDS_TO_OTHERS),
    _locked("CrossEx transfers", "/api/v4/crossex/transfers/**", FUNDS_OUT),
    _locked("TradFi transfers", "/api/v4/tradfi/transactions/**", FUNDS_OUT),
    _locked("stock account transfers", "/api/v4/stock/transactions/**", FUNDS_OUT),
    _locked("OTC fiat orders and bank cards", "/api/v4/otc/**", FUNDS_OUT),
    _locked("P2P merchant", "/api/v4/p2p/**", FUNDS_TO_OTHERS),
    _locked("sub-accounts and their keys", "/api/v4/sub_accounts/**", ESCALATION),
)

# -- tables for docs and check-config --------------------------------------------------------


def preset_table(name: str) -> list[tuple[str, str, str]]:
    """(methods, path glob, condition text) rows: exactly what a preset allows."""
    return [
        (methods_text(r.methods), r.path, r.condition.text if r.condition else "")
        for r in PRESETS[name]
    ]


def locked_name(rule: Rule) -> str:
    """The short name of a locked endpoint ("withdrawals", "UID transfer")."""
    return rule.source.removeprefix("locked: ").removesuffix(f" ({rule.reason})")


def locked_table() -> list[tuple[str, str, str, str]]:
    """(name, methods, path glob, reason) rows of the locked endpoints."""
    return [(locked_name(r), methods_text(r.methods), r.path, r.reason) for r in LOCKED]


def _markdown(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    # A column that is empty in every row (no preset rule has a condition) is left out.
    keep = [i for i in range(len(header)) if any(row[i] for row in rows)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(row[i] for i in keep) + " |" for row in rows]
    return "\n".join(lines)


def preset_markdown(name: str) -> str:
    rows = [(f"`{m}`", f"`{p}`", cond) for m, p, cond in preset_table(name)]
    return _markdown(("Methods", "Path", "Condition"), rows)


def locked_markdown() -> str:
    rows = [(name, f"`{m}`", f"`{p}`", why) for name, m, p, why in locked_table()]
    return _markdown(("Endpoint", "Methods", "Path", "Why"), rows)
