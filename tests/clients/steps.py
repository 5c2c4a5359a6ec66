"""One table of raw-HTTP steps, replayed by every client that has no Gate SDK of its own.

Node.js, Java and curl each run the same steps through their own HTTP stack (see
``http_steps.mjs``, ``GateHttpClient.java`` and ``run_curl`` in the tests), so a difference in
how one stack frames a request (chunked bodies, h2c upgrade offers, gzip, header case) is the only
thing that varies. The wire protocol to the runners is a line per step, tab-separated, binary
fields in base64, so no runner needs a JSON library.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "60000"}
# Over 1 KB, so the exchange gzips its answer for any client that accepts gzip.
BATCH = [{**ORDER, "text": f"t-batch-{i}"} for i in range(30)]
GZIPPED = [{**ORDER, "text": "t-gzipped"}]
JSON_TYPE = {"Content-Type": "application/json"}
# What the official JS SDK sends even without credentials (an empty KEY, a float Timestamp).
JUNK_CREDENTIALS = {"KEY": "", "SIGN": "junk-sign", "Timestamp": "1795288573.123"}


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class Step:
    name: str  # also the {id:NAME} handle for later steps
    method: str
    target: str  # path and query, as sent; may hold {id:STEP}
    status: int  # what the client must get back
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)  # fields the JSON answer must hold
    curl_args: tuple[str, ...] = ()  # curl-only extras; other runners ignore them


STEPS: tuple[Step, ...] = (
    Step("spot_balance", "GET", "/api/v4/spot/accounts", 200),
    Step(
        "futures_balance", "GET", "/api/v4/futures/usdt/accounts", 200, expect={"currency": "USDT"}
    ),
    Step("wallet_total", "GET", "/api/v4/wallet/total_balance?currency=USDT", 200),
    # The body ends in a newline, as Go's json.Encoder (gateapi-go) writes it: hashed as sent.
    Step(
        "spot_order",
        "POST",
        "/api/v4/spot/orders",
        201,
        _json(ORDER) + b"\n",
        JSON_TYPE,
        {"status": "open"},
    ),
    Step("open_orders", "GET", "/api/v4/spot/orders?currency_pair=BTC_USDT&status=open", 200),
    Step(
        "cancel_order",
        "DELETE",
        "/api/v4/spot/orders/{id:spot_order}?currency_pair=BTC_USDT",
        200,
        expect={"status": "cancelled"},
    ),
    Step("batch_orders", "POST", "/api/v4/spot/batch_orders", 200, _json(BATCH), JSON_TYPE),
    Step(
        "post_with_query",
        "POST",
        "/api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=10&cross_leverage_limit=20",
        200,
        expect={"leverage": "10", "cross_leverage_limit": "20"},
    ),
    Step(
        "encoded_query",
        "GET",
        "/api/v4/spot/orders?currency_pair=BTC_USDT&status=finished&text=a%2Cb+c%20d%E6%B5%8B",
        200,
    ),
    Step("own_credentials", "GET", "/api/v4/spot/accounts", 200, headers=JUNK_CREDENTIALS),
    Step(
        "gzip_body",
        "POST",
        "/api/v4/spot/batch_orders",
        200,
        gzip.compress(_json(GZIPPED)),
        {**JSON_TYPE, "Content-Encoding": "gzip"},
    ),
    Step(
        "policy_refusal",
        "POST",
        "/api/v4/withdrawals",
        403,
        _json({"currency": "USDT", "amount": "1", "address": "x"}),
        JSON_TYPE,
        {"label": "SIDECAR_POLICY_DENIED"},
    ),
)

# Framing only curl can be told to use; each must change nothing in what Gate sees.
CURL_STEPS: tuple[Step, ...] = (
    Step("h2c_upgrade_offer", "GET", "/api/v4/spot/accounts", 200, curl_args=("--http2",)),
    Step(
        "expect_100_continue",
        "POST",
        "/api/v4/spot/batch_orders",
        200,
        _json(BATCH),
        {**JSON_TYPE, "Expect": "100-continue"},
    ),
    Step(
        "compressed_answer",
        "GET",
        "/api/v4/spot/orders?currency_pair=BTC_USDT&status=open",
        200,
        curl_args=("--compressed",),
    ),
)


def encode(steps: tuple[Step, ...]) -> bytes:
    """The runners' stdin: one tab-separated line per step."""
    lines = []
    for s in steps:
        head = "".join(f"{k}: {v}\n" for k, v in s.headers.items()).encode()
        fields = [s.name, s.method, s.target, _b64(head), _b64(s.body)]
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Answer:
    name: str
    status: int
    content_encoding: str  # as the sidecar sent it ("" for none)
    body: bytes  # decoded by the client


def decode(stdout: bytes) -> list[Answer]:
    answers = []
    for line in stdout.decode().splitlines():
        if not line.strip():
            continue
        name, status, encoding, body = line.split("\t")
        answers.append(Answer(name, int(status), encoding, base64.b64decode(body)))
    return answers


def problems(steps: tuple[Step, ...], answers: list[Answer]) -> list[str]:
    """What went wrong, step by step; empty when every step got what it should."""
    found = {a.name: a for a in answers}
    out = []
    for step in steps:
        answer = found.get(step.name)
        if answer is None:
            out.append(f"{step.name}: no answer")
            continue
        if answer.status != step.status:
            out.append(
                f"{step.name}: status {answer.status}, wanted {step.status}: {answer.body!r}"
            )
            continue
        try:
            doc = json.loads(answer.body)
        except ValueError:
            out.append(f"{step.name}: answer is not JSON: {answer.body[:200]!r}")
            continue
        for key, value in step.expect.items():
            if not isinstance(doc, dict) or doc.get(key) != value:
                out.append(f"{step.name}: {key} is not {value!r} in {doc!r}")
    if "open_orders" in found and "spot_order" in found:
        order_id = json.loads(found["spot_order"].body).get("id")
        if order_id not in {o.get("id") for o in json.loads(found["open_orders"].body)}:
            out.append("open_orders: the order just placed is not listed")
    return out


def operations(steps: tuple[Step, ...]) -> list[str]:
    return [s.name for s in steps]
