"""The canonical-path rule: path tricks are refused (400), paths outside /api/v4/ are 404."""

from __future__ import annotations

import re
from pathlib import Path

import gate_api
import pytest

from sidecar.errors import BadRequest, NotFound
from sidecar.gate.paths import check_path, split_target

# (why, path, the message must contain)
REFUSED: list[tuple[str, str, str]] = [
    ("traversal", "/api/v4/spot/../withdrawals", "dot segment"),
    ("traversal out of the prefix", "/api/v4/../../etc/passwd", "dot segment"),
    ("a current-directory segment", "/api/v4/./spot/time", "dot segment"),
    ("a trailing dot segment", "/api/v4/spot/time/.", "dot segment"),
    ("a trailing dot-dot segment", "/api/v4/spot/orders/..", "dot segment"),
    ("a triple-dot segment", "/api/v4/spot/.../time", "dot segment"),
    ("traversal before the prefix", "/x/../api/v4/spot/time", "dot segment"),
    ("encoded traversal", "/api/v4/spot/%2e%2e/withdrawals", "percent-encoding"),
    ("upper-case encoded traversal", "/api/v4/spot/%2E%2E/withdrawals", "percent-encoding"),
    ("half-encoded traversal", "/api/v4/spot/.%2e/withdrawals", "percent-encoding"),
    ("an encoded slash", "/api/v4/spot%2F..%2Fwithdrawals", "percent-encoding"),
    ("an encoded backslash", "/api/v4/spot/..%5Cwithdrawals", "percent-encoding"),
    ("an encoded percent", "/api/v4/spot/%25", "percent-encoding"),
    ("double encoding", "/api/v4/spot/%252e%252e/withdrawals", "percent-encoding"),
    ("overlong UTF-8 dot", "/api/v4/spot/%c0%ae%c0%ae/withdrawals", "percent-encoding"),
    ("an encoded letter", "/api/v4/spot/tim%65", "percent-encoding"),
    ("an encoded NUL", "/api/v4/spot/time%00", "percent-encoding"),
    ("a double slash", "/api/v4//spot/time", "empty path segment"),
    ("a leading double slash", "//api/v4/spot/time", "empty path segment"),
    ("a trailing slash", "/api/v4/spot/time/", "empty path segment"),
    ("the bare prefix with a slash", "/api/v4/", "empty path segment"),
    ("a ;jsessionid parameter", "/api/v4/spot/time;jsessionid=1", "';' parameters"),
    ("a matrix parameter in the middle", "/api/v4/withdrawals;x/../spot", "';' parameters"),
    ("a backslash", "/api/v4/spot\\..\\withdrawals", "backslash"),
    ("an upper-case prefix", "/API/V4/spot/time", "prefix must be lower case"),
    ("a mixed-case prefix", "/Api/v4/spot/time", "prefix must be lower case"),
    ("an upper-case version", "/api/V4/spot/time", "prefix must be lower case"),
    ("an upper-case bare prefix", "/API/V4", "prefix must be lower case"),
    ("a NUL byte", "/api/v4/spot/time\x00", "control character"),
    ("a CR", "/api/v4/spot/time\r", "control character"),
    ("a LF (header injection)", "/api/v4/spot/time\nX-Evil: 1", "control character"),
    ("a tab", "/api/v4/spot/\ttime", "control character"),
    ("DEL", "/api/v4/spot/time\x7f", "control character"),
    ("a space", "/api/v4/spot/ time", "whitespace"),
    ("a fullwidth solidus lookalike", "/api/v4/spot\uff0ftime", "non-ASCII"),
    ("a one-dot leader lookalike", "/api/v4/spot/\u2024\u2024/withdrawals", "non-ASCII"),
    ("a Cyrillic a", "/api/v4/spot/ord\u0430rs", "non-ASCII"),
    ("a Kelvin sign", "/api/v4/spot/\u212a", "non-ASCII"),
    ("raw UTF-8 decoded as latin-1", "/api/v4/spot/\xc0\xae", "non-ASCII"),
    ("an asterisk", "/api/v4/spot/*", "'*'"),
    ("a question mark left in the path", "/api/v4/spot/time?", "'?'"),
    ("a hash left in the path", "/api/v4/spot/time#x", "'#'"),
    ("a double quote", '/api/v4/spot/"time"', "'\"'"),
    ("a single quote", "/api/v4/spot/'time'", '"\'"'),
    ("angle brackets", "/api/v4/spot/<time>", "'<'"),
    ("braces", "/api/v4/spot/{time}", "'{'"),
    ("square brackets", "/api/v4/spot/[time]", "'['"),
    ("a pipe", "/api/v4/spot/time|id", "'|'"),
    ("a caret", "/api/v4/spot/time^", "'^'"),
    ("a backtick", "/api/v4/spot/`id`", "'`'"),
    ("an exclamation mark", "/api/v4/spot/time!", "'!'"),
    ("a dollar sign", "/api/v4/spot/$time", "'$'"),
    ("an ampersand", "/api/v4/spot/time&x", "'&'"),
    ("parentheses", "/api/v4/spot/(time)", "'('"),
    ("an absolute-form target", "http://evil/api/v4/spot/time", "is not an HTTP proxy"),
    ("an asterisk-form target", "*", "must start with /"),
    ("an empty target", "", "must start with /"),
]

OUTSIDE: list[tuple[str, str]] = [
    ("the root", "/"),
    ("the bare prefix", "/api/v4"),
    ("another API version", "/api/v3/spot/time"),
    ("the API root", "/api"),
    ("a file", "/favicon.ico"),
    ("the admin paths on a key listener", "/metrics"),
    ("a prefix look-alike", "/api/v40/spot/time"),
    ("a prefix look-alike without the slash", "/api/v4spot/time"),
    ("a websocket path", "/ws/v4"),
]

# Real Gate paths, with ids in the shapes Gate uses.
ACCEPTED: list[str] = [
    "/api/v4/spot/time",
    "/api/v4/spot/currency_pairs/BTC_USDT",
    "/api/v4/spot/orders/12345678901",
    "/api/v4/spot/orders/t-my_order.1",
    "/api/v4/spot/price_orders/987",
    "/api/v4/futures/usdt/orders",
    "/api/v4/futures/usdt/positions/BTC_USDT/leverage",
    "/api/v4/futures/btc/dual_comp/positions/BTC_USD/margin",
    "/api/v4/futures/usdt/autoorder/v1/trail/create",
    "/api/v4/delivery/usdt/contracts/BTC_USDT_20240628",
    "/api/v4/options/contracts/BTC_USDT-20240628-60000-C",
    "/api/v4/wallet/total_balance",
    "/api/v4/wallet/getLowCapExchangeList",
    "/api/v4/withdrawals/12345",
    "/api/v4/sub_accounts/10001/keys/abcdef0123456789",
    "/api/v4/account/main_keys",
    "/api/v4/asset-swap/order/create",
    "/api/v4/earn/dual/order-refund-preview",
    "/api/v4/flash_swap/multi-currency/many-to-one/order/create",
    "/api/v4/rewards/claimReward",
    "/api/v4/stock/market/AAPL.US/orderbook",
    "/api/v4/spot/orders/a~b:c,d+e=f@g",
    "/api/v4/spot/.well-known",
    "/api/v4/spot/orders/t-ends-with-dot.",
]


@pytest.mark.parametrize(("why", "path", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_path_trick_is_refused_with_400_and_a_reason(why: str, path: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_path(path)
    assert info.value.status == 400
    assert message in info.value.message
    assert len(info.value.message) < 80


@pytest.mark.parametrize(("why", "path"), OUTSIDE, ids=[r[0] for r in OUTSIDE])
def test_a_well_formed_path_outside_api_v4_is_not_found(why: str, path: str) -> None:
    with pytest.raises(NotFound) as info:
        check_path(path)
    assert info.value.status == 404


@pytest.mark.parametrize("path", ACCEPTED)
def test_a_real_gate_path_is_accepted_unchanged(path: str) -> None:
    check_path(path)


def test_no_refusal_message_echoes_a_control_or_non_ascii_character() -> None:
    for _why, path, _message in REFUSED:
        with pytest.raises(BadRequest) as info:
            check_path(path)
        assert info.value.message.isascii()
        assert info.value.message.isprintable()


SPLITS: list[tuple[str, tuple[str, str]]] = [
    ("/api/v4/spot/time", ("/api/v4/spot/time", "")),
    (
        "/api/v4/spot/orders?currency_pair=BTC_USDT",
        ("/api/v4/spot/orders", "currency_pair=BTC_USDT"),
    ),
    ("/api/v4/x?", ("/api/v4/x", "")),
    ("/api/v4/x?a=1?b=2", ("/api/v4/x", "a=1?b=2")),
    ("/api/v4/x?currencies=BTC%2CETH&b=%20", ("/api/v4/x", "currencies=BTC%2CETH&b=%20")),
]


@pytest.mark.parametrize(("target", "expected"), SPLITS)
def test_a_target_splits_at_the_first_question_mark_keeping_the_raw_query(
    target: str, expected: tuple[str, str]
) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", ["/api/v4/x#frag", "/api/v4/x?a=1#frag", "/api/v4/x?a=#"])
def test_a_fragment_anywhere_in_the_target_is_refused(target: str) -> None:
    with pytest.raises(BadRequest):
        split_target(target)


def _sdk_paths() -> list[str]:
    api_dir = Path(gate_api.__file__).parent / "api"  # gate-api is pinned in the test extras
    found: set[str] = set()
    for source in api_dir.glob("*_api.py"):
        found.update(re.findall(r"call_api\(\s*'(/[^']*)'", source.read_text()))
    return sorted(found)


def test_every_endpoint_of_the_official_sdk_passes_the_canonical_path_check() -> None:
    paths = _sdk_paths()
    assert len(paths) > 300  # the parse found the endpoint list
    for template in paths:
        path = "/api/v4" + re.sub(r"\{settle\}", "usdt", template)
        path = re.sub(r"\{[a-z_]+\}", "BTC_USDT", path)
        check_path(path)


def test_a_path_found_canonical_before_does_not_vouch_for_another() -> None:
    check_path("/api/v4/spot/orders")  # remembered
    with pytest.raises(BadRequest):
        check_path("/api/v4/spot/orders/")  # a trailing slash: still refused
    with pytest.raises(BadRequest):
        check_path("/api/v4/spot/Orders/../orders")
    with pytest.raises(NotFound):
        check_path("/api/v5/spot/orders")


def test_the_canonical_paths_remembered_are_bounded() -> None:
    from sidecar import memo
    from sidecar.gate import paths

    for i in range(memo.SIZE + 10):
        check_path(f"/api/v4/spot/orders/{i}")
    assert len(paths._CANONICAL_SEEN) <= memo.SIZE


def test_a_long_canonical_path_is_accepted_but_not_remembered() -> None:
    from sidecar import memo
    from sidecar.gate import paths

    long_path = "/api/v4/spot/" + "a" * memo.PATH_MAX
    check_path(long_path)
    assert long_path not in paths._CANONICAL_SEEN  # a 32 KiB head cannot fill memory this way


def test_no_cache_keyed_by_path_keeps_a_long_one() -> None:
    """Policy decisions, endpoint groups, rate routes: each is bounded in entries and keeps
    only paths of an endpoint's length (a head may be 32 KiB long)."""
    from sidecar.config import parse_config
    from sidecar.memo import PATH_MAX
    from sidecar.ops import metrics
    from sidecar.proxy.budget import KeyBudget
    from sidecar.proxy.budget.settings import RateLimitConfig

    long_path = "/api/v4/futures/usdt/orders/" + "1" * PATH_MAX
    key = {"name": "k", "listen": "127.0.0.1:0", "source": {"env": {}}, "policy": "full-trading"}
    policy = parse_config({"keys": [key]}, environ={}).keys[0].compile_policy()
    assert policy.decide("GET", long_path, "", b"").allowed
    assert all(path != long_path for _, path in policy._cache)
    assert metrics.endpoint_group(long_path) == "futures"
    assert long_path not in metrics._GROUPS
    budget = KeyBudget("k", RateLimitConfig())
    assert budget.route("GET", long_path) == budget.route("GET", "/api/v4/futures/usdt/orders/1")
    assert all(path != long_path for _, path in budget._routes)
