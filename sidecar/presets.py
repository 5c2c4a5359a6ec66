"""The endpoint map as data: presets and the locked endpoints.

Paths are globs on the canonical path: ``*`` is exactly one segment, ``**`` any number of
segments (including none). Sources: Gate API v4 docs (v4.105) and the official SDKs' endpoint lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

Condition = Callable[[str, bytes], "str | None"]  # (raw_query, body) -> refusal reason or None


def glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    for part in pattern.split("/")[1:]:
        if part == "**":
            out += "(?:/[^/]+)*"
        else:
            out += "/" + "[^/]*".join(re.escape(p) for p in part.split("*"))
    return re.compile(f"^{out}$")


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    path: str
    source: str
    condition: Condition | None = None
    condition_text: str = ""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", glob_regex(self.path))

    def matches(self, method: str, path: str) -> bool:
        return ("*" in self.methods or method in self.methods) and bool(self.regex.match(path))

    @property
    def text(self) -> str:
        methods = ",".join(sorted(self.methods))
        return f"{methods} {self.path}"


# -- the spot account condition ---------------------------------------------------------------

SPOT_ACCOUNT_TEXT = "account spot or absent (body and query)"


def _accounts_in_body(doc: object) -> list[object]:
    items = doc if isinstance(doc, list) else [doc]
    found: list[object] = []
    for item in items:
        if isinstance(item, dict):
            if "account" in item:
                found.append(item["account"])
            put = item.get("put")
            if isinstance(put, dict) and "account" in put:
                # price-triggered orders: `put.account` is `normal` for plain spot.
                found.append("spot" if put["account"] == "normal" else put["account"])
    return found


def spot_account_only(raw_query: str, body: bytes) -> str | None:
    """Margin, cross-margin and unified orders share the spot order paths: read `account`."""
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        if name == "account" and value != "spot":
            return f"account={value} is not a spot order"
    if not body.strip():
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return "the body is not JSON, so its account cannot be checked"
    for account in _accounts_in_body(doc):
        if account != "spot":
            return f"account {account!r} is not a spot order"
    return None


def _rules(preset: str, entries: list[tuple[str, str, bool]]) -> tuple[Rule, ...]:
    out = []
    for methods, path, spot_cond in entries:
        out.append(
            Rule(
                frozenset(methods.split(",")),
                path,
                source=f"preset {preset}",
                condition=spot_account_only if spot_cond else None,
                condition_text=SPOT_ACCOUNT_TEXT if spot_cond else "",
            )
        )
    return tuple(out)


SPOT_WRITES = [
    ("POST", "/api/v4/spot/orders", True),
    ("POST", "/api/v4/spot/batch_orders", True),
    ("DELETE", "/api/v4/spot/orders", True),
    ("DELETE", "/api/v4/spot/orders/*", True),
    ("PATCH", "/api/v4/spot/orders/*", True),
    ("POST", "/api/v4/spot/cancel_batch_orders", True),
    ("POST", "/api/v4/spot/amend_batch_orders", True),
    ("POST", "/api/v4/spot/countdown_cancel_all", True),
    ("POST", "/api/v4/spot/price_orders", True),
    ("DELETE", "/api/v4/spot/price_orders", True),
    ("DELETE", "/api/v4/spot/price_orders/*", True),
]

PRESETS: dict[str, tuple[Rule, ...]] = {
    "read-only": _rules("read-only", [("GET", "/api/v4/**", False)]),
    "spot-only": _rules("spot-only", [("GET", "/api/v4/spot/**", False), *SPOT_WRITES]),
    "spot-read-only": _rules("spot-read-only", [("GET", "/api/v4/spot/**", False)]),
    "futures-only": _rules("futures-only", [("*", "/api/v4/futures/**", False)]),
    "futures-read-only": _rules("futures-read-only", [("GET", "/api/v4/futures/**", False)]),
    "delivery-only": _rules("delivery-only", [("*", "/api/v4/delivery/**", False)]),
    "options-only": _rules("options-only", [("*", "/api/v4/options/**", False)]),
    "full-trading": _rules("full-trading", [("*", "/api/v4/**", False)]),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)

WRITES = "POST,PUT,PATCH,DELETE"
FUNDS_OUT = "moves funds out of the account"
FUNDS_OTHER = "moves funds to another user or account"
ESCALATION = "privilege escalation"


def _locked(entries: list[tuple[str, str, str]]) -> tuple[Rule, ...]:
    return tuple(
        Rule(frozenset(m.split(",")), path, source=f"locked: {why}") for m, path, why in entries
    )


LOCKED: tuple[Rule, ...] = _locked(
    [
        (WRITES, "/api/v4/withdrawals", FUNDS_OUT),
        (WRITES, "/api/v4/withdrawals/**", FUNDS_OUT),  # incl. /withdrawals/push (UID transfer)
        (WRITES, "/api/v4/wallet/sub_account_transfers", FUNDS_OTHER),
        (WRITES, "/api/v4/wallet/sub_account_to_sub_account", FUNDS_OTHER),
        (WRITES, "/api/v4/crossex/transfers", FUNDS_OTHER),
        (WRITES, "/api/v4/crossex/transfers/**", FUNDS_OTHER),
        (WRITES, "/api/v4/tradfi/transactions", FUNDS_OTHER),
        (WRITES, "/api/v4/otc/**", FUNDS_OTHER),
        (WRITES, "/api/v4/p2p/merchant/**", FUNDS_OTHER),
        (WRITES, "/api/v4/sub_accounts", ESCALATION),
        (WRITES, "/api/v4/sub_accounts/**", ESCALATION),  # keys, lock/unlock, modes
    ]
)


def preset_table(name: str) -> list[tuple[str, str, str]]:
    """(methods, path glob, condition) rows: what a preset allows, for docs and check-config."""
    return [(",".join(sorted(r.methods)), r.path, r.condition_text) for r in PRESETS[name]]
