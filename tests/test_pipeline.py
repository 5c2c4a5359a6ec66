"""The request pipeline in process: its entry point (:func:`sidecar.proxy.pipeline.answer`) with the
in-memory forwarder (tests/doubles.py), one test per refusal kind.

No listener, no socket, no other process: each case builds one key's runtime, hands the pipeline
one :class:`BotRequest` and checks the answer's status and ``SIDECAR_*`` label, the audit record
the observers get, and whether anything reached the forwarder (a refusal never does). Every step
of :data:`sidecar.proxy.pipeline.STEPS` that can refuse is covered; the listeners' own refusals
(limits, parsing) are tested with them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import KeyConfig, parse_config
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.errors import UpstreamTimeout, UpstreamTooLarge, UpstreamUnavailable
from sidecar.gate.clock import Clock
from sidecar.gate.signing import HmacSigner
from sidecar.policy.guards import Guards
from sidecar.proxy.admission import Admission
from sidecar.proxy.brake import Brake
from sidecar.proxy.budget import build_budget
from sidecar.proxy.forwarder import UpstreamRequest, UpstreamResponse
from sidecar.proxy.peer import Peer
from sidecar.proxy.pipeline import STEPS, BotRequest, KeyRuntime, ReadyBody, answer
from sidecar.proxy.record import RequestRecord
from sidecar.runtime.safety import build_safety
from tests.doubles import MemoryForwarder

PORT = 8081
PEER = Peer(local_host="127.0.0.1", local_port=PORT, remote="127.0.0.1:50000")
HOST = ("Host", f"127.0.0.1:{PORT}")
JSON = ("Content-Type", "application/json")
ORDER = {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"}
FUTURES_ORDERS = "/api/v4/futures/usdt/orders"


async def gate(request: UpstreamRequest) -> UpstreamResponse:
    """Gate answering every request it gets: 201 for a POST, 200 otherwise."""
    status = 201 if request.method == "POST" else 200
    return UpstreamResponse(status, [("Content-Type", "application/json")], b'{"ok":true}')


@dataclass
class Pipe:
    """One key's runtime around a MemoryForwarder, and what its observers saw."""

    runtime: KeyRuntime
    forwarder: MemoryForwarder
    records: list[RequestRecord] = field(default_factory=list)

    async def send(
        self,
        method: str,
        target: str,
        body: object = None,
        headers: list[tuple[str, str]] | None = None,
        *,
        raw: bytes | None = None,
        peer: Peer = PEER,
        reader: Callable[[int], Awaitable[bytes]] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        request = BotRequest(
            method,
            target,
            [HOST, JSON] if headers is None else headers,
            reader or ReadyBody(data),
            peer,
        )
        response = await answer(self.runtime, request)
        return response.status, json.loads(response.body) if response.body else {}


def key_config(**entry: Any) -> KeyConfig:
    base = {
        "name": "bot",
        "listen": f"127.0.0.1:{PORT}",
        "source": {"env": {}},
        "policy": "futures-only",
        **entry,
    }
    return parse_config({"keys": [base]}, environ={}).keys[0]


@pytest.fixture
async def make_pipe() -> AsyncIterator[Callable[..., Pipe]]:
    budgets = []

    def make(
        upstream: Callable[[UpstreamRequest], Awaitable[UpstreamResponse]] = gate,
        *,
        secret: bool = True,
        max_body_bytes: int = 1024,
        body_timeout_s: float | None = None,
        **entry: Any,
    ) -> Pipe:
        cfg = key_config(**entry)
        slot = KeySlot(cfg.name)
        if secret:
            slot.install(Credentials("api-key", HmacSigner("s" * 64), "test"))
        forwarder = MemoryForwarder(upstream)
        runtime = KeyRuntime(
            name=cfg.name,
            policy=cfg.compile_policy(),
            slot=slot,
            forwarder=forwarder,
            clock=Clock(),
            max_body_bytes=max_body_bytes,
            guards=Guards(cfg.guards),
            brake=Brake(cfg.name, configured=cfg.guards.cancel_only),
            budget=build_budget(cfg.name, cfg.rate_limit),
            admission=Admission.build(cfg.client_auth, cfg.allowed_hosts, cfg.forward_headers),
            body_timeout_s=body_timeout_s,
        )
        runtime.safety = build_safety(cfg, runtime)  # warn mode, windows (no dead man here)
        if runtime.budget is not None:
            budgets.append(runtime.budget)
        pipe = Pipe(runtime, forwarder)
        runtime.observers.append(pipe.records.append)
        return pipe

    yield make
    for budget in budgets:
        await budget.close()


def refused(pipe: Pipe, status: int, label: str, answer: tuple[int, dict[str, Any]]) -> str:
    """Assert a refusal (nothing forwarded, one record with the label); its message."""
    got_status, doc = answer
    assert (got_status, doc.get("label")) == (status, label), doc
    assert pipe.forwarder.sent == [], "a refused request reached the forwarder"
    (record,) = pipe.records
    assert (record.status, record.label) == (status, label)
    message: str = doc["message"]
    return message


async def test_an_allowed_request_is_signed_and_forwarded_once(
    make_pipe: Callable[..., Pipe],
) -> None:
    pipe = make_pipe()
    status, doc = await pipe.send("POST", FUTURES_ORDERS, ORDER)
    assert (status, doc) == (201, {"ok": True})
    (sent,) = pipe.forwarder.sent
    names = {name for name, _ in sent.headers}
    assert {"KEY", "Timestamp", "SIGN"} <= names and sent.body == json.dumps(ORDER).encode()
    (record,) = pipe.records
    assert (record.decision, record.status, record.version) == ("allow", 201, "test")


# -- admission ------------------------------------------------------------------------------


async def test_a_header_value_outside_printable_ascii_is_400(
    make_pipe: Callable[..., Pipe],
) -> None:
    pipe = make_pipe()
    answer = await pipe.send("GET", FUTURES_ORDERS, headers=[HOST, ("X-Note", "caf\u00e9")])
    refused(pipe, 400, "SIDECAR_BAD_REQUEST", answer)


async def test_a_browsers_request_is_403_forbidden_origin(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe()
    answer = await pipe.send("GET", FUTURES_ORDERS, headers=[HOST, ("Origin", "https://evil")])
    refused(pipe, 403, "SIDECAR_FORBIDDEN_ORIGIN", answer)


async def test_a_foreign_host_is_421_misdirected(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe()
    answer = await pipe.send("GET", FUTURES_ORDERS, headers=[("Host", "attacker.example")])
    refused(pipe, 421, "SIDECAR_MISDIRECTED", answer)


async def test_a_unix_peer_outside_peer_uids_is_403_forbidden_peer(
    make_pipe: Callable[..., Pipe],
) -> None:
    pipe = make_pipe(listen="unix:/tmp/bot.sock", client_auth={"peer_uids": [4242]})
    stranger = Peer(unix=True, uid=1000, gid=1000)
    answer = await pipe.send("GET", FUTURES_ORDERS, headers=[JSON], peer=stranger)
    refused(pipe, 403, "SIDECAR_FORBIDDEN_PEER", answer)


async def test_a_missing_client_token_is_401(
    make_pipe: Callable[..., Pipe], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 32)
    pipe = make_pipe(client_auth={"token_file": str(token)})
    refused(pipe, 401, "SIDECAR_UNAUTHENTICATED", await pipe.send("GET", FUTURES_ORDERS))


# -- path, query, body -------------------------------------------------------------------------


async def test_a_path_trick_is_400_and_never_repaired(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe()
    answer = await pipe.send("GET", "/api/v4/futures/usdt/../../withdrawals")
    assert "dot segment" in refused(pipe, 400, "SIDECAR_BAD_REQUEST", answer)


async def test_a_path_outside_the_api_is_404(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe()
    refused(pipe, 404, "SIDECAR_NOT_FOUND", await pipe.send("GET", "/admin"))


async def test_a_query_escape_that_is_not_utf8_is_400(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe()
    refused(pipe, 400, "SIDECAR_BAD_REQUEST", await pipe.send("GET", FUTURES_ORDERS + "?x=%ff"))


async def test_a_body_over_max_body_bytes_is_413(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe(max_body_bytes=16)
    answer = await pipe.send("POST", FUTURES_ORDERS, ORDER)
    refused(pipe, 413, "SIDECAR_BODY_TOO_LARGE", answer)


async def test_a_body_that_never_arrives_is_408_and_closes(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe(body_timeout_s=0.01)

    async def stalled(limit: int) -> bytes:
        await asyncio.Event().wait()  # a bot that sends its head and never the body
        raise AssertionError("unreachable")

    answer = await pipe.send("POST", FUTURES_ORDERS, reader=stalled)
    refused(pipe, 408, "SIDECAR_REQUEST_TIMEOUT", answer)


# -- policy, brake, guards, media type --------------------------------------------------------


async def test_a_call_outside_the_policy_is_403_policy_denied(
    make_pipe: Callable[..., Pipe],
) -> None:
    pipe = make_pipe()
    answer = await pipe.send("POST", "/api/v4/spot/orders", {"currency_pair": "BTC_USDT"})
    message = refused(pipe, 403, "SIDECAR_POLICY_DENIED", answer)
    assert message.startswith("bot may not POST /api/v4/spot/orders")
    assert pipe.records[0].decision == "deny"


async def test_a_withdrawal_is_locked_whatever_the_preset(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe(policy="full-trading")
    answer = await pipe.send("POST", "/api/v4/withdrawals", {"currency": "USDT", "amount": "1"})
    assert "locked" in refused(pipe, 403, "SIDECAR_POLICY_DENIED", answer)


async def test_the_cancel_only_brake_refuses_a_new_order_and_passes_a_read(
    make_pipe: Callable[..., Pipe],
) -> None:
    pipe = make_pipe(guards={"cancel_only": True})
    answer = await pipe.send("POST", FUTURES_ORDERS, ORDER)
    refused(pipe, 403, "SIDECAR_GUARD_DENIED", answer)
    assert pipe.records[0].guard is not None
    assert (await pipe.send("GET", FUTURES_ORDERS + "?status=open"))[0] == 200


async def test_an_order_over_its_guard_is_403_guard_denied(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe(guards={"instruments": ["BTC_USDT"], "max_order_size": 10})
    answer = await pipe.send("POST", FUTURES_ORDERS, {**ORDER, "size": 50})
    assert "max_order_size 10 < size 50" in refused(pipe, 403, "SIDECAR_GUARD_DENIED", answer)


async def test_an_order_over_a_rolling_window_is_403_guard_denied(
    make_pipe: Callable[..., Pipe],
) -> None:
    pipe = make_pipe(guards={"windows": [{"per_s": 60, "max_orders": 1}]})
    assert (await pipe.send("POST", FUTURES_ORDERS, ORDER))[0] == 201
    pipe.forwarder.sent.clear()
    pipe.records.clear()
    refused(pipe, 403, "SIDECAR_GUARD_DENIED", await pipe.send("POST", FUTURES_ORDERS, ORDER))


async def test_an_allowed_body_that_is_not_json_is_415(make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe()
    headers = [HOST, ("Content-Type", "application/x-www-form-urlencoded")]
    answer = await pipe.send("POST", FUTURES_ORDERS, headers=headers, raw=b"contract=BTC_USDT")
    refused(pipe, 415, "SIDECAR_UNSUPPORTED_MEDIA_TYPE", answer)


# -- credentials, budget, forwarding ---------------------------------------------------------


async def test_a_key_without_a_secret_is_503_key_unavailable(
    make_pipe: Callable[..., Pipe],
) -> None:
    pipe = make_pipe(secret=False)
    refused(pipe, 503, "SIDECAR_KEY_UNAVAILABLE", await pipe.send("GET", FUTURES_ORDERS))
    assert pipe.records[0].decision == "error"  # allowed by the policy, yet not served


async def test_a_spent_rate_budget_is_429_with_retry_after(make_pipe: Callable[..., Pipe]) -> None:
    override = {"group": "futures-order-place", "limit": 1, "per_s": 60}
    pipe = make_pipe(rate_limit={"gate_defaults": False, "overrides": [override]})
    assert (await pipe.send("POST", FUTURES_ORDERS, ORDER))[0] == 201
    pipe.forwarder.sent.clear()
    pipe.records.clear()
    response = await answer(
        pipe.runtime,
        BotRequest(
            "POST", FUTURES_ORDERS, [HOST, JSON], ReadyBody(json.dumps(ORDER).encode()), PEER
        ),
    )
    doc = json.loads(response.body)
    assert (response.status, doc["label"]) == (429, "SIDECAR_RATE_LIMITED")
    assert ("Retry-After", "60") in response.headers
    assert pipe.forwarder.sent == [] and pipe.records[0].rate_group == "futures-order-place"


@pytest.mark.parametrize(
    ("error", "status", "label"),
    [
        (UpstreamUnavailable("connection refused"), 502, "SIDECAR_UPSTREAM_UNAVAILABLE"),
        (UpstreamTimeout("no answer within 30 s"), 504, "SIDECAR_UPSTREAM_TIMEOUT"),
        (UpstreamTooLarge("answer over 64 MiB"), 502, "SIDECAR_UPSTREAM_TOO_LARGE"),
    ],
)
async def test_a_forwarding_failure_is_answered_in_gates_format(
    make_pipe: Callable[..., Pipe], error: Exception, status: int, label: str
) -> None:
    async def failing(request: UpstreamRequest) -> UpstreamResponse:
        raise error

    pipe = make_pipe(failing)
    got_status, doc = await pipe.send("POST", FUTURES_ORDERS, ORDER)
    assert (got_status, doc["label"]) == (status, label)
    assert len(pipe.forwarder.sent) == 1  # sent once, never again (an order is not resent)
    assert (pipe.records[0].status, pipe.records[0].label) == (status, label)
    assert pipe.records[0].decision == "error"  # the audit line does not say "allow" beside it


async def test_a_bug_inside_the_pipeline_is_a_500_without_a_traceback_in_the_answer(
    make_pipe: Callable[..., Pipe],
) -> None:
    async def broken(request: UpstreamRequest) -> UpstreamResponse:
        raise RuntimeError("a bug")

    pipe = make_pipe(broken)
    status, doc = await pipe.send("GET", FUTURES_ORDERS)
    assert status == 500 and "Traceback" not in json.dumps(doc) and "a bug" not in json.dumps(doc)


def test_every_refusing_step_of_the_pipeline_has_a_case_here() -> None:
    """The steps that can refuse a request, each with a test above (a new step needs one)."""
    covered = {
        "admission": test_a_browsers_request_is_403_forbidden_origin,
        "canonical path and query": test_a_query_escape_that_is_not_utf8_is_400,
        "body": test_a_body_over_max_body_bytes_is_413,
        "policy": test_a_call_outside_the_policy_is_403_policy_denied,
        "brake": test_the_cancel_only_brake_refuses_a_new_order_and_passes_a_read,
        "guards": test_an_order_over_its_guard_is_403_guard_denied,
        "windows": test_an_order_over_a_rolling_window_is_403_guard_denied,
        "JSON only": test_an_allowed_body_that_is_not_json_is_415,
        "credentials": test_a_key_without_a_secret_is_503_key_unavailable,
        "rate budget": test_a_spent_rate_budget_is_429_with_retry_after,
        "forwarding": test_a_forwarding_failure_is_answered_in_gates_format,
    }
    # An allow-list and a signature refuse nothing; the heartbeat is a route of its own
    # (tests/test_deadman.py), answered before the path checks.
    never_refuse = {"headers", "signing", "heartbeat"}
    assert set(STEPS) == set(covered) | never_refuse
