"""What an endpoint handler receives and may raise: shared by the handler modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from multidict import CIMultiDict

from sidecar.devtools.exchange.state import Account, ExchangeState

Result = tuple[int, Any]  # HTTP status, JSON document


@dataclass
class Call:
    state: ExchangeState
    method: str
    params: dict[str, str]  # path parameters
    query: dict[str, str]  # decoded query (last value wins)
    body: Any  # parsed JSON or None
    account: Account | None  # None on public endpoints
    headers: CIMultiDict[str]

    @property
    def acct(self) -> Account:
        if self.account is None:  # a routing-table mistake, never a client's
            raise ApiError(500, "SERVER_ERROR", "private handler without an account")
        return self.account


Handler = Callable[[Call], Result]


class ApiError(Exception):
    def __init__(self, status: int, label: str, message: str) -> None:
        super().__init__(message)
        self.status, self.label, self.message = status, label, message


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAM_VALUE", message)


def obj_body(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise invalid("a JSON object body is required")
    return call.body


def list_body(call: Call) -> list[dict[str, Any]]:
    if not isinstance(call.body, list) or not all(isinstance(x, dict) for x in call.body):
        raise invalid("a JSON list of objects is required")
    return call.body


def required(spec: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if spec.get(name) in (None, ""):
            raise ApiError(400, "MISSING_REQUIRED_PARAM", f"{name} is required")


def decimal(value: Any, name: str) -> Decimal:
    """A number as Gate accepts it: JSON string or number, finite."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid(f"{name} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise invalid(f"{name} must be a number") from None
    if not number.is_finite():
        raise invalid(f"{name} must be a number")
    return number


def choice(spec: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = spec.get(name, default)
    if value not in allowed:
        raise invalid(f"{name} must be one of {', '.join(allowed)}")
    return str(value)


def limit(call: Call, default: int = 100, maximum: int = 1000) -> int:
    raw = call.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid(f"limit must be 1..{maximum}")
    return int(raw)
