"""The endpoint map as data: the presets and the locked endpoints. Pure.

Endpoint facts come from Gate's API v4 documentation (v4.105) and the official Python SDK's
endpoint list (gate-api 7.2.161, ``gate_api/api/*_api.py``). A new preset is one entry in
:data:`PRESETS` (its rules as ``(methods, glob, condition)`` rows); ``check-config``, the docs'
tables and the config's list of preset names all follow from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.policy.conditions import SPOT_ACCOUNT, SPOT_PRICE_ACCOUNT, Condition
from sidecar.policy.globs import NON_GET, methods_text
from sidecar.policy.origin import Origin, OriginKind

# -- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]  # upper case; "*" = any
    path: str  # glob
    origin: Origin
    condition: Condition | None = None
    reason: str = ""  # locked endpoints only: why it is locked

    @property
    def text(self) -> str:
        return f"{methods_text(self.methods)} {self.path}"

    @property
    def label(self) -> str:
        """The rule as denials, audit lines and check-config name it."""
        if self.origin.kind is OriginKind.LOCKED:
            return f"locked: {self.origin.name} ({self.reason})"
        return f"{self.origin}: {self.text}"


def _preset(name: str, entries: list[tuple[str, str, Condition | None]]) -> tuple[Rule, ...]:
    rules = []
    for methods, path, condition in entries:
        spec = frozenset(methods.split(","))
        rules.append(Rule(spec, path, Origin(OriginKind.PRESET, preset=name), condition))
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
    return Rule(NON_GET, path, Origin(OriginKind.LOCKED, name=name), reason=reason)


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


def locked_table() -> list[tuple[str, str, str, str]]:
    """(name, methods, path glob, reason) rows of the locked endpoints."""
    return [(str(r.origin.name), methods_text(r.methods), r.path, r.reason) for r in LOCKED]


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
