"""The WebSocket trading API on the exchange's own order book: each call runs the REST handler
of the same operation, so an order placed over WebSocket is the one REST lists and cancels.

Channels and ``req_param`` fields: Gate API v4 WebSocket docs ("Order Place", "Order Cancel",
"Order Cancel by id list", "Cancel all orders with specified currency pair", "Order Amend",
"Order Status", "Order List") and the futures twins; gateio-api's request types
(``WsAPITopicRequestParamMap``) for the shapes: ``spot.order_cancel_ids`` takes a list of
``{currency_pair, id, account?}``, ``futures.order_cancel_ids`` a list of order ids,
``*.order_amend`` an object with ``order_id`` and the new price / amount (spot) or size
(futures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from multidict import CIMultiDict

from sidecar.devtools.exchange import handlers_futures as fut
from sidecar.devtools.exchange import handlers_spot as spot
from sidecar.devtools.exchange.calls import ApiError, Call, Handler, invalid
from sidecar.devtools.exchange.state import Account, ExchangeState

PLACE_CHANNELS = frozenset({"spot.order_place", "futures.order_place", "futures.order_batch_place"})


def _query(req: Any) -> dict[str, str]:
    if not isinstance(req, dict):
        raise invalid("req_param must be an object")
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in req.items()}


def _id(req: Any) -> dict[str, str]:
    query = _query(req)
    if not query.get("order_id"):
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "order_id is required")
    return {"id": query["order_id"]}


# channel -> (REST handler, method, path params from req_param, query from req_param, body?)
_Spec = tuple[Handler, str, Callable[[Any], dict[str, str]], bool, bool]
SPOT: dict[str, _Spec] = {
    "spot.order_place": (spot.create_order, "POST", lambda r: {}, False, True),
    "spot.order_amend": (spot.amend_order, "PATCH", _id, False, True),
    "spot.order_cancel": (spot.cancel_order, "DELETE", _id, True, False),
    "spot.order_cancel_ids": (spot.cancel_batch_orders, "POST", lambda r: {}, False, True),
    "spot.order_cancel_cp": (spot.cancel_orders, "DELETE", lambda r: {}, True, False),
    "spot.order_status": (spot.get_order, "GET", _id, True, False),
    "spot.order_list": (spot.list_orders, "GET", lambda r: {}, True, False),
}
FUTURES: dict[str, _Spec] = {
    "futures.order_place": (fut.create_order, "POST", lambda r: {}, False, True),
    "futures.order_batch_place": (fut.batch_orders, "POST", lambda r: {}, False, True),
    "futures.order_amend": (fut.amend_order, "PUT", _id, False, True),
    "futures.order_cancel": (fut.cancel_order, "DELETE", _id, False, False),
    "futures.order_cancel_ids": (fut.cancel_batch_orders, "POST", lambda r: {}, False, True),
    "futures.order_cancel_cp": (fut.cancel_orders, "DELETE", lambda r: {}, True, False),
    "futures.order_status": (fut.get_order, "GET", _id, False, False),
    "futures.order_list": (fut.list_orders, "GET", lambda r: {}, True, False),
}


def run_call(
    state: ExchangeState,
    account: Account,
    product: str,
    settle: str,
    channel: str,
    req_param: Any,
    headers: CIMultiDict[str],
) -> Any:
    """The result document of one trading-API call; ApiError as REST would raise it."""
    table = SPOT if product == "spot" else FUTURES
    spec = table.get(channel)
    if spec is None:
        raise ApiError(400, "INVALID_PARAM_VALUE", f"{channel} is not modelled by the exchange")
    handler, method, params_of, with_query, with_body = spec
    params = params_of(req_param)
    if product != "spot":
        params["settle"] = settle
    query = _query(req_param) if with_query else {}
    body = req_param if with_body else None
    if channel == "spot.order_cancel" or channel == "spot.order_status":
        query.pop("order_id", None)
    call = Call(state, method, params, query, body, account, headers)
    _, doc = handler(call)
    return doc
