"""Real clients, unchanged but for their base URL, trading through the sidecar.

Each test drives the sidecar (in front of the verifying exchange) with a client as its users run
it: the official Python SDK, ccxt, Node.js, curl, Java. A run passes when the client got the
answers it expects *and* every request that reached the exchange carried the sidecar's signature
and none of the client's own credentials. Each run also becomes a row of the compatibility table
in docs/clients.md (see tests/clients/compat_table.py); the last test checks that table.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import gate_api
import pytest
from gate_api.exceptions import GateApiException

from sidecar.gate.head import upstream_headers
from tests.clients import compat_table, steps
from tests.clients.harness import (
    DUMMY_KEY,
    DUMMY_SECRET,
    HERE,
    INSTALL,
    TCP,
    UNIX,
    Bench,
    CompatLog,
    assert_signed_by_sidecar,
    bench,
    run,
    tool,
    toolchain_missing,
)
from tests.clients.unix_urllib3 import use_unix_socket
from tests.fixtures_exchange import RunningExchange

# ccxt is imported by the functions that use it, not here: importing it costs each pytest
# worker about 1.8 s at collection, for a handful of tests (marker `ccxt`; `make test-lowest`
# leaves ccxt out and deselects them).

DOC = Path(__file__).resolve().parents[1] / "docs" / "clients.md"

# Every (client, transport) this module runs: the rows of the compatibility table.
SDK_TCP = ("gate-api (Python SDK)", TCP)
SDK_UNIX = ("gate-api (Python SDK)", UNIX)
CCXT_TCP = ("ccxt `gate` (Python)", TCP)
CCXT_UNIX = ("ccxt `gate` (Python, async_support)", UNIX)
NODE_TCP = ("Node.js `fetch` (built in)", TCP)
NODE_UNIX = ("Node.js `http.request` (socketPath)", UNIX)
CURL_TCP = ("curl", TCP)
CURL_UNIX = ("curl", UNIX)
JAVA_TCP = ("Java `java.net.http.HttpClient`", TCP)
CASES = (SDK_TCP, SDK_UNIX, CCXT_TCP, CCXT_UNIX, NODE_TCP, NODE_UNIX, CURL_TCP, CURL_UNIX, JAVA_TCP)


@pytest.fixture(scope="session")
def compat() -> Iterator[CompatLog]:
    log = CompatLog()
    yield log
    if log.rows:
        compat_table.save(log.rows)


@pytest.fixture
async def b(exchange: RunningExchange) -> AsyncIterator[Bench]:
    async with bench(exchange) as running:
        yield running


# -- the official Python SDK (gate-api) ------------------------------------------------------

SDK_OPERATIONS = [
    "list_spot_accounts",
    "list_currency_pairs",
    "list_futures_accounts",
    "get_total_balance",
    "create_order",
    "list_orders",
    "cancel_order",
    "create_batch_orders",
    "cancel_orders",
    "create_futures_order",
    "list_futures_orders",
    "cancel_futures_order",
    "create_batch_futures_order",
    "update_position_leverage (POST ?leverage=)",
    "withdraw (refused)",
]


def sdk_session(client: Any) -> dict[str, Any]:
    """Everything SDK_OPERATIONS names, as a bot would call it. Runs in a worker thread."""
    spot, futures = gate_api.SpotApi(client), gate_api.FuturesApi(client)
    wallet, withdrawal = gate_api.WalletApi(client), gate_api.WithdrawalApi(client)
    seen: dict[str, Any] = {
        "spot_accounts": spot.list_spot_accounts(),
        "pairs": spot.list_currency_pairs(),
        "futures_account": futures.list_futures_accounts("usdt"),
        "total": wallet.get_total_balance(currency="USDT"),
    }
    order = spot.create_order(
        gate_api.Order(currency_pair="BTC_USDT", side="buy", amount="0.001", price="60000")
    )
    seen["open"] = [o.id for o in spot.list_orders("BTC_USDT", "open")]
    seen["cancelled"] = spot.cancel_order(order.id, "BTC_USDT").status
    seen["order_id"] = order.id
    batch = [
        gate_api.Order(currency_pair=pair, side="buy", amount="0.01", price="100", text=f"t-{i}")
        for i, pair in enumerate(("BTC_USDT", "ETH_USDT"))
    ]
    seen["batch"] = [o.succeeded for o in spot.create_batch_orders(batch)]
    seen["cancel_all"] = len(spot.cancel_orders(currency_pair="BTC_USDT"))
    forder = futures.create_futures_order(
        "usdt", gate_api.FuturesOrder(contract="BTC_USDT", size=1, price="60000")
    )
    seen["futures_open"] = [o.id for o in futures.list_futures_orders("usdt", "open")]
    seen["futures_cancelled"] = futures.cancel_futures_order("usdt", str(forder.id)).finish_as
    seen["futures_order_id"] = forder.id
    fbatch = [gate_api.FuturesOrder(contract="ETH_USDT", size=2, price="3000")]
    seen["futures_batch"] = [
        o.succeeded for o in futures.create_batch_futures_order("usdt", fbatch)
    ]
    seen["leverage"] = futures.update_position_leverage(
        "usdt", "BTC_USDT", "10", cross_leverage_limit="20"
    ).leverage
    try:
        withdrawal.withdraw(
            gate_api.LedgerRecord(currency="USDT", amount="1", address="x", chain="TRX")
        )
    except GateApiException as exc:
        seen["withdraw"] = (exc.status, exc.label)
    return seen


def check_sdk_session(seen: dict[str, Any]) -> None:
    # Shapes and round trips, not the exchange's canned numbers.
    assert "USDT" in {a.currency for a in seen["spot_accounts"]}
    assert "BTC_USDT" in {p.id for p in seen["pairs"]}
    assert seen["futures_account"].currency == "USDT"
    assert float(seen["total"].total.amount) > 0
    assert seen["open"] == [seen["order_id"]] and seen["cancelled"] == "cancelled"
    assert seen["batch"] == [True, True] and seen["cancel_all"] == 1
    assert seen["futures_open"] == [seen["futures_order_id"]]
    assert seen["futures_cancelled"] == "cancelled" and seen["futures_batch"] == [True]
    assert seen["leverage"] == "10"
    assert seen["withdraw"] == (403, "SIDECAR_POLICY_DENIED")


def gate_api_version() -> str:
    return version("gate-api")


async def test_the_official_python_sdk_trades_without_credentials(
    b: Bench, compat: CompatLog
) -> None:
    with compat.case(*SDK_TCP, SDK_OPERATIONS) as row:
        row.version = gate_api_version()
        mark = b.mark()
        client = gate_api.ApiClient(gate_api.Configuration(host=b.base_url + "/api/v4"))
        check_sdk_session(await asyncio.to_thread(sdk_session, client))
        sent = b.since(mark)
        assert_signed_by_sidecar(sent, b.api_keys["bot"])
        leverage = next(r for r in sent if r.raw_path.endswith("/leverage"))
        assert leverage.method == "POST"
        assert leverage.raw_query == "leverage=10&cross_leverage_limit=20"


async def test_the_official_python_sdk_works_over_a_unix_socket(
    b: Bench, compat: CompatLog
) -> None:
    with compat.case(*SDK_UNIX, SDK_OPERATIONS) as row:
        row.version = gate_api_version()
        mark = b.mark()
        client = gate_api.ApiClient(gate_api.Configuration(host="http://localhost/api/v4"))
        use_unix_socket(client, b.socket_path)
        check_sdk_session(await asyncio.to_thread(sdk_session, client))
        assert_signed_by_sidecar(b.since(mark), b.api_keys["sock"])


async def test_a_python_sdk_still_holding_a_key_has_it_replaced(b: Bench) -> None:
    # The SDK signs itself when given a key: a float Timestamp ("1795288573.1234") and a SIGN
    # made with the old secret. The sidecar must drop all three and sign afresh.
    mark = b.mark()
    cfg = gate_api.Configuration(host=b.base_url + "/api/v4", key=DUMMY_KEY, secret=DUMMY_SECRET)
    spot = gate_api.SpotApi(gate_api.ApiClient(cfg))
    order = await asyncio.to_thread(
        spot.create_order,
        gate_api.Order(currency_pair="BTC_USDT", side="sell", amount="1", price="70000"),
    )
    assert order.status == "open"
    assert_signed_by_sidecar(b.since(mark), b.api_keys["bot"])


# -- ccxt ------------------------------------------------------------------------------------

CCXT_OPERATIONS = [
    "load_markets (spot, swap)",
    "fetch_balance (spot)",
    "fetch_balance (swap)",
    "create_order (spot)",
    "fetch_open_orders (spot)",
    "cancel_order (spot)",
    "create_order (swap)",
    "fetch_open_orders (swap)",
    "cancel_order (swap)",
    "withdraw (refused)",
]
# Load only the market types a bot trades: each type is a round of public calls at start-up.
CCXT_OPTIONS = {
    "fetchMarkets": {"types": ["spot", "swap"]},
    "swap": {"fetchMarkets": {"settlementCurrencies": ["usdt"]}},
}


def point_ccxt_at(exchange: Any, api_base: str) -> Any:
    """ccxt's recipe: dummy credentials (it refuses to call private endpoints without some)
    and every entry of ``urls['api']`` pointed at the sidecar."""
    for group in exchange.urls["api"].values():
        for name in group:
            group[name] = api_base
    return exchange


def ccxt_config(**extra: Any) -> dict[str, Any]:
    return {"apiKey": DUMMY_KEY, "secret": DUMMY_SECRET, "options": CCXT_OPTIONS, **extra}


def check_ccxt_session(seen: dict[str, Any]) -> None:
    assert {"BTC/USDT", "BTC/USDT:USDT"} <= set(seen["markets"])
    assert seen["spot_balance"] > 0 and seen["swap_balance"] > 0
    for kind in ("spot", "swap"):
        assert seen[f"{kind}_open"] == [seen[f"{kind}_id"]], seen
        assert seen[f"{kind}_cancelled"] == "canceled", seen
    # ccxt knows no SIDECAR_ label: a refusal surfaces as ExchangeError carrying the body.
    assert seen["withdraw"] == "ExchangeError" and "SIDECAR_POLICY_DENIED" in seen["refusal"]


def ccxt_sync_session(exchange: Any) -> dict[str, Any]:
    import ccxt

    seen: dict[str, Any] = {"markets": list(exchange.load_markets())}
    seen["spot_balance"] = exchange.fetch_balance()["total"]["USDT"]
    seen["swap_balance"] = exchange.fetch_balance({"type": "swap"})["total"]["USDT"]
    for kind, symbol, amount in (("spot", "BTC/USDT", 0.001), ("swap", "BTC/USDT:USDT", 1)):
        order = exchange.create_order(symbol, "limit", "buy", amount, 60000)
        seen[f"{kind}_id"] = order["id"]
        seen[f"{kind}_open"] = [o["id"] for o in exchange.fetch_open_orders(symbol)]
        seen[f"{kind}_cancelled"] = exchange.cancel_order(order["id"], symbol)["status"]
    try:
        exchange.withdraw("USDT", 1, "addr", params={"network": "TRX"})
    except ccxt.BaseError as exc:
        seen["withdraw"], seen["refusal"] = type(exc).__name__, str(exc)
    return seen


async def ccxt_async_session(exchange: Any) -> dict[str, Any]:
    import ccxt

    seen: dict[str, Any] = {"markets": list(await exchange.load_markets())}
    seen["spot_balance"] = (await exchange.fetch_balance())["total"]["USDT"]
    seen["swap_balance"] = (await exchange.fetch_balance({"type": "swap"}))["total"]["USDT"]
    for kind, symbol, amount in (("spot", "BTC/USDT", 0.001), ("swap", "BTC/USDT:USDT", 1)):
        order = await exchange.create_order(symbol, "limit", "buy", amount, 60000)
        seen[f"{kind}_id"] = order["id"]
        seen[f"{kind}_open"] = [o["id"] for o in await exchange.fetch_open_orders(symbol)]
        seen[f"{kind}_cancelled"] = (await exchange.cancel_order(order["id"], symbol))["status"]
    try:
        await exchange.withdraw("USDT", 1, "addr", params={"network": "TRX"})
    except ccxt.BaseError as exc:
        seen["withdraw"], seen["refusal"] = type(exc).__name__, str(exc)
    return seen


@pytest.mark.ccxt
async def test_ccxt_trades_spot_and_swap_with_dummy_credentials(
    b: Bench, compat: CompatLog
) -> None:
    import ccxt

    with compat.case(*CCXT_TCP, CCXT_OPERATIONS) as row:
        row.version = ccxt.__version__
        mark = b.mark()
        exchange = point_ccxt_at(ccxt.gate(ccxt_config()), b.base_url + "/api/v4")
        check_ccxt_session(await asyncio.to_thread(ccxt_sync_session, exchange))
        sent = b.since(mark)
        assert_signed_by_sidecar(sent, b.api_keys["bot"])
        # ccxt tags every request with its broker id; the sidecar lets it through untouched.
        assert all(r.headers.get("X-Gate-Channel-Id") == "ccxt" for r in sent)


@pytest.mark.ccxt
async def test_ccxt_async_works_over_a_unix_socket(b: Bench, compat: CompatLog) -> None:
    import ccxt
    import ccxt.async_support as ccxt_async

    with compat.case(*CCXT_UNIX, CCXT_OPERATIONS) as row:
        row.version = ccxt.__version__
        mark = b.mark()
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=b.socket_path))
        exchange = point_ccxt_at(
            ccxt_async.gate(ccxt_config(session=session)), "http://localhost/api/v4"
        )
        try:
            check_ccxt_session(await ccxt_async_session(exchange))
        finally:
            await exchange.close()
            await session.close()
        assert_signed_by_sidecar(b.since(mark), b.api_keys["sock"])


# -- raw HTTP: Node.js, curl, Java -----------------------------------------------------------


async def replay(b: Bench, api_key: str, argv: list[str], todo: tuple[steps.Step, ...]) -> None:
    mark = b.mark()
    answers = steps.decode(await run(argv, steps.encode(todo)))
    found = steps.problems(todo, answers)
    assert not found, "\n".join(found)
    check_wire(b, mark, api_key, answers)


def check_wire(b: Bench, mark: int, api_key: str, answers: list[steps.Answer]) -> None:
    """What the exchange saw of a raw-HTTP replay, beyond the client's own answers."""
    sent = b.since(mark)
    assert_signed_by_sidecar(sent, api_key)
    assert not [r for r in sent if r.raw_path == "/api/v4/withdrawals"]  # refused, never sent
    queries = {r.raw_query for r in sent}
    assert "currency_pair=BTC_USDT&status=finished&text=a%2Cb+c%20d%E6%B5%8B" in queries
    assert "leverage=10&cross_leverage_limit=20" in queries
    bodies = [r for r in sent if r.body == json.dumps(steps.GZIPPED).encode()]
    assert bodies and all("Content-Encoding" not in r.headers for r in bodies)
    for r in sent:
        for hop in ("Upgrade", "HTTP2-Settings", "Expect", "Transfer-Encoding"):
            assert hop not in r.headers, (r.raw_path, hop)
    batch = next(a for a in answers if a.name == "batch_orders")
    assert len(json.loads(batch.body)) == len(steps.BATCH)


async def node_version(node: str) -> str:
    return (await run([node, "--version"])).decode().strip()


async def test_node_fetch_replays_every_step(b: Bench, compat: CompatLog) -> None:
    with compat.case(*NODE_TCP, steps.operations(steps.STEPS)) as row:
        node = tool("node")
        row.version = await node_version(node)
        argv = [node, str(HERE / "http_steps.mjs"), "--url", b.base_url]
        await replay(b, b.api_keys["bot"], argv, steps.STEPS)


async def test_node_http_request_works_over_a_unix_socket(b: Bench, compat: CompatLog) -> None:
    with compat.case(*NODE_UNIX, steps.operations(steps.STEPS)) as row:
        node = tool("node")
        row.version = await node_version(node)
        argv = [node, str(HERE / "http_steps.mjs"), "--socket", b.socket_path]
        await replay(b, b.api_keys["sock"], argv, steps.STEPS)


async def run_curl(curl: str, where: list[str], base: str, todo: tuple[steps.Step, ...]) -> bytes:
    """curl one step at a time, in the runners' output format (ids carried between steps)."""
    ids: dict[str, str] = {}
    lines = []
    for step in todo:
        target = re.sub(r"\{id:([^}]+)\}", lambda m: ids[m[1]], step.target)
        argv = [curl, "-sS", "-X", step.method, *where, *step.curl_args, "-D", "-"]
        for name, value in step.headers.items():
            argv += ["-H", f"{name}: {value}" if value else f"{name};"]  # "KEY;" sends it empty
        if step.body:
            argv += ["--data-binary", "@-"]
        out = await run([*argv, base + target], step.body)
        head, _, body = out.partition(b"\r\n\r\n")
        while head.startswith(b"HTTP/1.1 100"):  # interim answer to Expect: 100-continue
            head, _, body = body.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        encoding = re.search(rb"(?im)^content-encoding:\s*(\S+)", head)
        if m := re.search(rb'"id"\s*:\s*"?([^",}\s]+)', body):
            ids[step.name] = m[1].decode()
        fields = [step.name, str(status), encoding[1].decode() if encoding else ""]
        lines.append("\t".join([*fields, steps._b64(body)]))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("case", [CURL_TCP, CURL_UNIX], ids=["tcp", "unix"])
async def test_curl_replays_every_step(b: Bench, compat: CompatLog, case: tuple[str, str]) -> None:
    todo = steps.STEPS + steps.CURL_STEPS
    with compat.case(*case, steps.operations(todo)) as row:
        curl = tool("curl")
        row.version = (await run([curl, "--version"])).decode().split()[1]
        where, base, api_key = [], b.base_url, b.api_keys["bot"]
        if case == CURL_UNIX:
            where, base = ["--unix-socket", b.socket_path], "http://localhost"
            api_key = b.api_keys["sock"]
        mark = b.mark()
        answers = steps.decode(await run_curl(curl, where, base, todo))
        found = steps.problems(todo, answers)
        assert not found, "\n".join(found)
        check_wire(b, mark, api_key, answers)
        compressed = next(a for a in answers if a.name == "compressed_answer")
        assert compressed.content_encoding == "gzip"  # Gate's gzip relayed as is, curl decoded it


async def test_java_httpclient_replays_every_step(b: Bench, compat: CompatLog) -> None:
    with compat.case(*JAVA_TCP, steps.operations(steps.STEPS)) as row:
        java = tool("java")
        row.version = await asyncio.to_thread(_java_version, java)
        if not row.version.split(".")[0].isdigit() or int(row.version.split(".")[0]) < 11:
            toolchain_missing(f"java {row.version} cannot run a source file", INSTALL["java"])
        argv = [java, str(HERE / "GateHttpClient.java"), "--url", b.base_url]
        await replay(b, b.api_keys["bot"], argv, steps.STEPS)


def _java_version(java: str) -> str:
    # `java -version` writes to stderr; the property is the plain version ("17.0.15").
    out = subprocess.run(
        [java, "-XshowSettings:properties", "-version"], capture_output=True, text=True, timeout=30
    )
    m = re.search(r"java\.version = (\S+)", out.stderr)
    return m[1] if m else "?"


# -- regressions: what real clients sent that the sidecar once mishandled --------------------


@pytest.mark.parametrize(
    "coding",
    ["gzip", "x-gzip", "deflate", "br", "zstd", "GZIP", " gzip ", "identity", "gzip, gzip"],
)
def test_a_request_content_encoding_never_reaches_gate(coding: str) -> None:
    # The listener decodes the body (or refuses a coding it does not decode); the sidecar signs
    # and forwards the decoded bytes, so the label would make Gate gunzip plain JSON.
    assert upstream_headers([("Content-Encoding", coding), ("Accept", "*/*")]) == [
        ("Accept", "*/*")
    ]
    extra = frozenset({"content-encoding"})  # not even when a key names it
    assert upstream_headers([("Content-Encoding", coding)], extra) == []


async def test_a_gzipped_request_body_reaches_gate_decoded_and_verified(b: Bench) -> None:
    doc = [{**steps.ORDER, "text": "t-gz"}]
    mark = b.mark()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            b.base_url + "/api/v4/spot/batch_orders",
            data=gzip.compress(json.dumps(doc).encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert (await resp.json())[0]["text"] == "t-gz"
    (sent,) = b.since(mark)
    assert sent.verdict == "ok" and json.loads(sent.body) == doc
    assert "Content-Encoding" not in sent.headers


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_is_a_400_and_never_forwarded(
    b: Bench, coding: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Was a 500 SIDECAR_INTERNAL_ERROR with a traceback in the log: a client error is a 400.
    mark = b.mark()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            b.base_url + "/api/v4/spot/orders",
            data=b'{"not": "compressed"}',
            headers={"Content-Encoding": coding},
        ) as resp,
    ):
        assert resp.status == 400
        # Some garbage is already refused by aiohttp's parser, in plain text, before the handler.
        if resp.content_type == "application/json":
            assert (await resp.json())["label"] == "SIDECAR_BAD_REQUEST"
    assert b.since(mark) == []
    assert "internal error" not in caplog.text


# -- the compatibility table -----------------------------------------------------------------


def test_the_table_holds_what_ran_and_reads_back() -> None:
    rows = [
        compat_table.Row("curl", TCP, "8.0", ["spot_balance"], compat_table.PASS),
        compat_table.Row("Node.js", UNIX, "v20", ["spot_order"], "fail: AssertionError"),
        compat_table.Row("Go net/http", TCP, result="skipped: go is not installed"),
    ]
    doc = f"intro\n{compat_table.START}\nold table\n{compat_table.END}\nafter\n"
    new = compat_table.replace(doc, compat_table.render(rows))
    assert new.startswith("intro\n") and new.endswith(f"{compat_table.END}\nafter\n")
    assert "old table" not in new and "`spot_order`" in new
    assert compat_table.listed(new) == [("curl", TCP), ("Node.js", UNIX)]
    assert "- Go net/http (TCP): skipped: go is not installed" in new


@pytest.mark.ccxt  # it needs every client's row, ccxt's included
def test_the_table_only_lists_clients_this_suite_ran(compat: CompatLog) -> None:
    # Last in the module on purpose: pytest runs a module's tests in order, so every client
    # test above has recorded its row (pass, fail or not run) by now.
    ran = {(r.client, r.transport): r for r in compat.rows}
    if set(ran) != set(CASES):
        pytest.fail("only part of the client tests ran in this session: run the whole module")
    problems = []
    for client, transport in compat_table.listed(DOC.read_text()):
        row = ran.get((client, transport))
        if row is None:
            problems.append(f"{client} over {transport}: no test of this suite runs it")
        elif row.result != compat_table.PASS:
            problems.append(f"{client} over {transport}: {row.result} in this run")
    assert not problems, "docs/clients.md lists:\n" + "\n".join(problems)
