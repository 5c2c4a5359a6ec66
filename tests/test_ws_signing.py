"""The pure WebSocket pieces: signatures, frame decoding, bot paths, the channel table, settings."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import parse_config
from sidecar.config.models import PolicyConfig
from sidecar.errors import ConfigError
from sidecar.gate.signing import HmacSigner
from sidecar.gate.ws_paths import WsEndpoint, ws_endpoint
from sidecar.gate.ws_signing import sign_api_request, sign_subscription
from sidecar.policy.engine import compile_policy
from sidecar.policy.ws_channels import TABLE, Kind, channel_markdown, channel_rule, decide_frame
from sidecar.proxy.ws.envelope import BadFrame, decode

SECRET = "secret"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "websocket.md"


def hmac_hex(text: str) -> str:
    # Written out here from Gate's rule, not borrowed from the module under test.
    return hmac.new(SECRET.encode(), text.encode(), hashlib.sha512).hexdigest()


async def test_a_subscription_is_signed_over_channel_event_and_time() -> None:
    frame = {"time": 9, "channel": "spot.orders", "event": "subscribe", "auth": {"KEY": "x"}}
    signed = await sign_subscription(frame, HmacSigner(SECRET), "key", 1700000000)
    assert signed["time"] == 1700000000
    assert signed["auth"] == {
        "method": "api_key",
        "KEY": "key",
        "SIGN": hmac_hex("channel=spot.orders&event=subscribe&time=1700000000"),
    }


@pytest.mark.parametrize(
    ("req_param", "text"),
    [
        ({}, "{}"),
        ("", '""'),
        ({"text": "t-ü", "amount": 0.5, "n": [1, 2]}, '{"text":"t-ü","amount":0.5,"n":[1,2]}'),
    ],
    ids=["gate-ws and ccxt login", "gateio-api login", "an order"],
)
async def test_a_trading_api_frame_is_signed_over_the_req_param_text_it_carries(
    req_param: Any, text: str
) -> None:
    frame = {
        "time": 5,
        "channel": "spot.order_place",
        "event": "api",
        "payload": {"req_id": "1", "req_param": req_param, "timestamp": "17000000005"},
    }
    out = await sign_api_request(frame, HmacSigner(SECRET), "key", 1700000000)
    assert f'"req_param":{text}' in out
    doc = json.loads(out)
    assert doc["time"] == 1700000000 and doc["payload"]["timestamp"] == "1700000000"
    assert doc["payload"]["api_key"] == "key"
    expected = hmac_hex(f"api\nspot.order_place\n{text}\n1700000000")
    assert doc["payload"]["signature"] == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"a": 1, "a": 2}', "repeats"),
        ('{"a": NaN}', "not JSON"),
        ('{"a": 1e400}', "out of range"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_a_frame_that_cannot_be_checked_is_refused(text: str, why: str) -> None:
    with pytest.raises(BadFrame, match=why):
        decode(text)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/ws/v4/", WsEndpoint("spot", "")),
        ("/v4/ws/usdt", WsEndpoint("futures", "usdt")),
        ("/v4/ws/futures/btc", WsEndpoint("futures", "btc")),
        ("/v4/ws/delivery/usdt", WsEndpoint("delivery", "usdt")),
        ("/v4/ws/options/btc", WsEndpoint("options", "btc")),
        ("/v4/ws/eth", "settle must be"),
        ("/v4/ws/us%64t", "settle must be"),
        ("/ws/v4", "no WebSocket endpoint"),
        ("/v4/ws/futures/usdt/", "no WebSocket endpoint"),
        ("/v4/ws/spot/usdt", "no WebSocket endpoint"),
    ],
)
def test_the_bot_side_paths(path: str, expected: WsEndpoint | str) -> None:
    got = ws_endpoint(path)
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got
    else:
        assert got == expected


# Every private channel and trading-API channel the reference notes list (options: gateio-api's
# private-topic list; delivery: the futures private channels, and no trading API, which Gate
# serves on spot and perpetual futures only).
DELIVERY = (
    "futures.orders futures.usertrades futures.balances futures.positions futures.autoorders "
    "futures.liquidates futures.auto_deleverages futures.position_closes futures.reduce_risk_limits"
)
REFERENCE = {
    "delivery": DELIVERY,
    "options": "options.orders options.usertrades options.liquidates options.user_settlements "
    "options.position_closes options.balances options.positions",
    "spot": "spot.orders spot.usertrades spot.balances spot.margin_balances "
    "spot.funding_balances spot.cross_balances spot.priceorders spot.cross_loan spot.login "
    "spot.order_place spot.order_cancel spot.order_cancel_ids spot.order_cancel_cp "
    "spot.order_amend spot.order_status spot.order_list",
    "futures": "futures.orders futures.usertrades futures.balances futures.positions "
    "futures.autoorders futures.liquidates futures.auto_deleverages futures.position_closes "
    "futures.reduce_risk_limits futures.login futures.order_place futures.order_batch_place "
    "futures.order_cancel futures.order_cancel_ids futures.order_cancel_cp futures.order_amend "
    "futures.order_status futures.order_list",
}


@pytest.mark.parametrize("product", ["spot", "futures", "delivery", "options"])
def test_every_channel_of_the_reference_is_mapped(product: str) -> None:
    assert sorted(TABLE[product][1]) == sorted(REFERENCE[product].split())


def _policy(*presets: str) -> Any:
    return compile_policy("k", PolicyConfig(presets=list(presets)))


WRITE_CHANNELS = [
    ("spot", n)
    for n in "spot.order_place spot.order_cancel spot.order_cancel_ids spot.order_cancel_cp "
    "spot.order_amend".split()
] + [
    ("futures", n)
    for n in "futures.order_place futures.order_batch_place futures.order_cancel "
    "futures.order_cancel_ids futures.order_cancel_cp futures.order_amend".split()
]


def _decide(presets: list[str], product: str, channel: str, body: bytes = b"") -> bool:
    rule = channel_rule(product, channel)
    assert rule is not None
    return decide_frame(_policy(*presets), product, "usdt", channel, rule.kind, body).allowed


@pytest.mark.parametrize(("product", "channel"), WRITE_CHANNELS)
def test_read_only_may_not_place_amend_or_cancel(product: str, channel: str) -> None:
    assert not _decide(["read-only"], product, channel)
    assert _decide(["full-trading"], product, channel)


@pytest.mark.parametrize("product", ["spot", "futures", "delivery", "options"])
def test_read_only_may_subscribe_to_every_private_channel_and_log_in(product: str) -> None:
    for channel, rule in TABLE[product][1].items():
        if rule.kind is Kind.PRIVATE or channel.endswith((".login", "_status", "_list")):
            assert _decide(["read-only"], product, channel), channel


def test_futures_only_reaches_no_spot_channel_and_every_futures_one() -> None:
    for channel in TABLE["spot"][1]:
        assert not _decide(["futures-only"], "spot", channel), channel
    for channel in TABLE["futures"][1]:
        assert _decide(["futures-only"], "futures", channel), channel
    # Delivery connections use the futures.* names; their twins are /delivery/... endpoints.
    assert not _decide(["futures-only"], "delivery", "futures.orders")
    assert _decide(["delivery-only"], "delivery", "futures.orders")


@pytest.mark.parametrize(
    ("presets", "product", "allowed"),
    [
        (["delivery-only"], "delivery", True),
        (["delivery-only"], "futures", False),
        (["delivery-only"], "options", False),
        (["options-only"], "options", True),
        (["options-only"], "delivery", False),
        (["futures-only"], "options", False),
        (["spot-only"], "delivery", False),
        (["spot-only"], "options", False),
    ],
)
def test_a_product_preset_reaches_the_private_channels_of_its_own_connections_only(
    presets: list[str], product: str, allowed: bool
) -> None:
    for channel in TABLE[product][1]:
        assert _decide(presets, product, channel) is allowed, channel


@pytest.mark.parametrize(
    ("product", "channel"),
    [
        ("delivery", "futures.login"),
        ("delivery", "futures.order_place"),
        ("delivery", "futures.order_cancel"),
        ("options", "options.login"),
        ("options", "options.order_place"),
    ],
)
def test_a_trading_api_frame_on_delivery_or_options_is_refused_whatever_the_policy(
    product: str, channel: str
) -> None:
    for presets in (["full-trading"], [f"{product}-only"]):
        decision = decide_frame(_policy(*presets), product, "usdt", channel, Kind.API, b"{}")
        assert not decision.allowed
        assert decision.reason == f"Gate has no trading API on {product} connections"


# The REST twins of the amend and cancel-by-ids calls are what a key's rules judge.
AMEND_AND_CANCEL_IDS = [
    ("spot", "spot.order_amend", "PATCH", "/api/v4/spot/orders/*"),
    ("spot", "spot.order_cancel_ids", "POST", "/api/v4/spot/cancel_batch_orders"),
    ("futures", "futures.order_amend", "PUT", "/api/v4/futures/*/orders/*"),
    ("futures", "futures.order_cancel_ids", "POST", "/api/v4/futures/*/batch_cancel_orders"),
]


@pytest.mark.parametrize(("product", "channel", "method", "path"), AMEND_AND_CANCEL_IDS)
def test_a_deny_rule_on_the_rest_twin_refuses_the_amend_or_cancel_ids_call_and_nothing_else(
    product: str, channel: str, method: str, path: str
) -> None:
    spec = PolicyConfig.model_validate(
        {"presets": ["full-trading"], "deny": [{"methods": [method], "path": path}]}
    )
    policy = compile_policy("k", spec)
    for name, rule in TABLE[product][1].items():
        decision = decide_frame(policy, product, "usdt", name, rule.kind, b"[]")
        assert decision.allowed is (name != channel), name
        if name == channel:
            assert decision.rule.startswith("deny[0]")


@pytest.mark.parametrize(
    ("channel", "req_param", "allowed"),
    [
        ("spot.order_amend", {"order_id": "1", "currency_pair": "BTC_USDT", "price": "1"}, True),
        (
            "spot.order_amend",
            {"order_id": "1", "currency_pair": "BTC_USDT", "account": "spot"},
            True,
        ),
        (
            "spot.order_amend",
            {"order_id": "1", "currency_pair": "BTC_USDT", "account": "margin"},
            False,
        ),
        ("spot.order_cancel_ids", [{"currency_pair": "BTC_USDT", "id": "1"}], True),
        (
            "spot.order_cancel_ids",
            [
                {"currency_pair": "BTC_USDT", "id": "1"},
                {"currency_pair": "BTC_USDT", "id": "2", "account": "cross_margin"},
            ],
            False,
        ),
    ],
)
def test_spot_only_reads_the_account_of_amend_and_cancel_ids(
    channel: str, req_param: Any, allowed: bool
) -> None:
    body = json.dumps(req_param).encode()
    assert _decide(["spot-only"], "spot", channel, body) is allowed


@pytest.mark.parametrize(
    ("req_param", "allowed"),
    [
        ({"currency_pair": "BTC_USDT", "account": "spot"}, True),
        ({"currency_pair": "BTC_USDT"}, True),
        ({"currency_pair": "BTC_USDT", "account": "margin"}, False),
        ({"currency_pair": "BTC_USDT", "Account": "cross_margin"}, False),
        ({"currency_pair": "BTC_USDT", "account": "unified"}, False),
    ],
)
def test_spot_only_reads_the_account_of_spot_order_place(
    req_param: dict[str, str], allowed: bool
) -> None:
    body = json.dumps(req_param).encode()
    assert _decide(["spot-only"], "spot", "spot.order_place", body) is allowed


def test_a_locked_rule_or_deny_rule_applies_to_frames_as_to_rest() -> None:
    spec = PolicyConfig.model_validate(
        {"presets": ["full-trading"], "deny": [{"methods": ["*"], "path": "/api/v4/futures/**"}]}
    )
    policy = compile_policy("k", spec)
    decision = decide_frame(policy, "futures", "usdt", "futures.orders", Kind.PRIVATE, b"")
    assert not decision.allowed and decision.rule.startswith("deny[0]")


def test_the_docs_show_the_channel_table_the_code_uses() -> None:
    assert channel_markdown() in DOCS.read_text()


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"keys": [{"ws": {"max_frame_bytes": 10}}]}, "keys[0].ws.max_frame_bytes:"),
        ({"keys": [{"ws": {"on_rotation": "drop"}}]}, "keys[0].ws.on_rotation:"),
        ({"keys": [{"ws": {"idle_timeout_s": 0}}]}, "keys[0].ws.idle_timeout_s:"),
        ({"upstream": {"ws": {"futures": "wss://fx-ws.gateio.ws/v4/ws/usdt"}}}, "{settle}"),
        ({"upstream": {"ws": {"spot": "https://api.gateio.ws/ws/v4/"}}}, "upstream.ws.spot:"),
    ],
)
def test_a_bad_websocket_setting_names_its_field(section: dict[str, Any], problem: str) -> None:
    key = {
        "name": "bot",
        "listen": "127.0.0.1:0",
        "source": {"env": {"key_var": "K", "secret_var": "S"}},
        "policy": "read-only",
    }
    data: dict[str, Any] = {"keys": [key]}
    if "keys" in section:
        key.update(section["keys"][0])
    else:
        data.update(section)
    with pytest.raises(ConfigError) as err:
        parse_config(data, environ={})
    assert any(problem in line for line in err.value.problems), err.value.problems
    assert not re.search(r"secret", str(err.value), re.I)
