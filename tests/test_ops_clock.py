"""Clock skew: measuring the offset to Gate's clock, when to re-measure, and signing with it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest

from sidecar.config.models import ClockConfig
from sidecar.errors import UpstreamUnavailable
from sidecar.gate.clock import SERVER_TIME_PATH, Clock, offset_from_server_time, parse_http_date
from sidecar.ops.clocksync import ClockSync
from sidecar.proxy.forwarder import UpstreamRequest, UpstreamResponse
from sidecar.proxy.record import RequestRecord
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import call, ops_setup, scrape
from tests.sync import eventually


@pytest.mark.parametrize(
    ("body", "sent", "received", "offset"),
    [
        (b'{"server_time": 1000500}', 1000.0, 1001.0, 0.0),  # stamped mid-way: no offset
        (b'{"server_time": 1300000}', 1000.0, 1000.0, 300.0),  # Gate 5 minutes ahead
        (b'{"server_time": 700000}', 1000.0, 1000.0, -300.0),  # Gate 5 minutes behind
        (b'{"server_time": 1000250.0}', 1000.0, 1000.5, 0.0),  # a float is accepted
    ],
)
def test_the_offset_is_gates_time_minus_the_round_trip_midpoint(
    body: bytes, sent: float, received: float, offset: float
) -> None:
    assert offset_from_server_time(body, sent, received) == pytest.approx(offset)


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"server_time": "soon"}', b'{"server_time": true}', b"{}"]
)
def test_an_unexpected_time_answer_is_an_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        offset_from_server_time(body, 0.0, 0.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Thu, 01 Jan 1970 00:01:40 GMT", 100.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
        ("garbage", None),
        ("", None),
        ("Sun, 06 Nov 1994 08:49:37", None),  # no zone: cannot be trusted
    ],
)
def test_http_dates_are_parsed_or_ignored(header: str, expected: float | None) -> None:
    assert parse_http_date(header) == expected


@dataclass
class FakeGate:
    """A forwarder answering /spot/time from a clock ``ahead_s`` in front of the local one."""

    wall: list[float]
    ahead_s: float = 0.0
    fail: bool = False
    calls: list[str] = field(default_factory=list)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.calls.append(request.path)
        if self.fail:
            raise UpstreamUnavailable("cannot reach Gate: ClientConnectorError")
        ms = int((self.wall[0] + self.ahead_s) * 1000)
        return UpstreamResponse(200, [], json.dumps({"server_time": ms}).encode())

    async def close(self) -> None:
        pass


def _sync(gate: FakeGate, **cfg: float) -> tuple[ClockSync, Clock, list[float]]:
    mono = [0.0]
    clock = Clock(wall=lambda: gate.wall[0])
    sync = ClockSync(clock, gate, ClockConfig.model_validate(cfg), monotonic=lambda: mono[0])
    return sync, clock, mono


async def test_a_measurement_sets_the_offset_the_signer_uses() -> None:
    gate = FakeGate(wall=[1_700_000_000.0], ahead_s=300.0)
    sync, clock, _ = _sync(gate)
    assert await sync.sync_once()
    assert gate.calls == [SERVER_TIME_PATH]
    assert clock.offset_s == pytest.approx(300.0, abs=0.01)
    assert clock.now() == 1_700_000_300
    assert (sync.successes, sync.failures) == (1, 0)


async def test_a_failed_measurement_keeps_the_previous_offset_and_is_counted() -> None:
    gate = FakeGate(wall=[1_700_000_000.0], ahead_s=42.0)
    sync, clock, _ = _sync(gate)
    await sync.sync_once()
    gate.fail = True
    assert not await sync.sync_once()
    assert clock.offset_s == pytest.approx(42.0, abs=0.01)
    assert (sync.successes, sync.failures) == (1, 1)
    assert sync.last_error is not None and "ClientConnectorError" in sync.last_error


async def test_an_offset_above_warn_offset_s_is_logged_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sync, _, _ = _sync(FakeGate(wall=[1e9], ahead_s=6.0), warn_offset_s=5)
    await sync.sync_once()
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warnings and warnings[0].offset_s == pytest.approx(6.0, abs=0.01)  # type: ignore[attr-defined]
    caplog.clear()
    sync2, _, _ = _sync(FakeGate(wall=[1e9], ahead_s=4.0), warn_offset_s=5)
    await sync2.sync_once()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def _record(label: str | None = None, date: str | None = None) -> RequestRecord:
    record = RequestRecord("k", "GET", "/api/v4/spot/accounts", 0)
    record.label, record.upstream_date = label, date
    return record


def test_request_expired_asks_for_a_measurement_at_once() -> None:
    sync, _, _ = _sync(FakeGate(wall=[1e9]))
    sync.observe(_record(label="INVALID_SIGNATURE"))
    assert not sync._wake.is_set()
    sync.observe(_record(label="REQUEST_EXPIRED"))
    assert sync._wake.is_set()


@pytest.mark.parametrize(
    ("date", "triggers"),
    [
        ("Sun, 09 Sep 2001 01:46:40 GMT", False),  # == the corrected clock (1e9)
        ("Sun, 09 Sep 2001 01:46:42 GMT", False),  # within the Date header's resolution
        ("Sun, 09 Sep 2001 01:51:40 GMT", True),  # 5 minutes ahead
        ("Sun, 09 Sep 2001 01:41:40 GMT", True),  # 5 minutes behind
        ("nonsense", False),
    ],
)
def test_a_date_header_far_from_the_corrected_clock_asks_for_a_measurement(
    date: str, triggers: bool
) -> None:
    sync, _, mono = _sync(FakeGate(wall=[1e9]))
    mono[0] = 1000.0  # long after the last measurement
    sync.observe(_record(date=date))
    assert sync._wake.is_set() == triggers


def test_date_triggers_are_rate_limited() -> None:
    sync, _, mono = _sync(FakeGate(wall=[1e9]))
    sync._last_attempt = mono[0] = 1000.0
    mono[0] += 10  # a measurement 10 s ago: a drifting Date header alone does not repeat it
    sync.observe(_record(date="Sun, 09 Sep 2001 01:51:40 GMT"))
    assert not sync._wake.is_set()


async def test_the_sync_loop_measures_again_when_triggered() -> None:
    gate = FakeGate(wall=[1e9], ahead_s=10.0)
    clock = Clock(wall=lambda: gate.wall[0])
    sync = ClockSync(clock, gate, ClockConfig(interval_s=3600))
    await sync.start(first_timeout_s=5)
    try:
        assert clock.offset_s == pytest.approx(10.0, abs=0.01)
        sync._last_attempt -= 60  # pretend the first measurement was a minute ago
        gate.ahead_s = 120.0
        sync.trigger("test")
        await eventually(lambda: sync.successes == 2, 5, "the second measurement")
        assert clock.offset_s == pytest.approx(120.0, abs=0.01)
    finally:
        await sync.stop()


async def test_start_does_not_wait_forever_for_gate() -> None:
    class Hanging(FakeGate):
        async def send(self, request: UpstreamRequest) -> UpstreamResponse:
            await asyncio.Event().wait()  # a Gate that never answers
            raise AssertionError("unreachable")

    sync = ClockSync(Clock(), Hanging(wall=[0.0]), ClockConfig())
    await asyncio.wait_for(sync.start(first_timeout_s=0.2), timeout=5)
    await sync.stop()
    assert sync.failures == 1 and sync.last_error is not None and "within" in sync.last_error


async def test_a_gate_clock_5_minutes_ahead_still_accepts_requests(
    exchange: RunningExchange,
) -> None:
    exchange.state.clock_offset_s = 300.0
    async with ops_setup(exchange, {"bot": "read-only"}, clock={"sync": True}) as s:
        status, body = await call("GET", s.url("bot", "/api/v4/spot/accounts"))
        samples = await scrape(s.sidecar.admin_url)
    assert status == 200, body
    assert exchange.state.requests[-1].verdict == "ok"
    assert samples[("gate_sidecar_clock_offset_seconds", ())] == pytest.approx(300, abs=2)
    assert samples[("gate_sidecar_clock_syncs_total", (("result", "ok"),))] >= 1


async def test_without_clock_sync_the_same_skew_is_refused_by_gate(
    exchange: RunningExchange,
) -> None:
    exchange.state.clock_offset_s = 300.0
    async with ops_setup(exchange, {"bot": "read-only"}, clock={"sync": False}) as s:
        status, body = await call("GET", s.url("bot", "/api/v4/spot/accounts"))
    assert status == 401 and json.loads(body)["label"] == "REQUEST_EXPIRED"


async def test_a_clock_jump_after_start_is_corrected_after_request_expired(
    exchange: RunningExchange,
) -> None:
    async with ops_setup(exchange, {"bot": "read-only"}, clock={"sync": True}) as s:
        url = s.url("bot", "/api/v4/spot/accounts")
        assert (await call("GET", url))[0] == 200
        exchange.state.clock_offset_s = -240.0  # Gate's clock (or ours) jumps by 4 minutes
        status, body = await call("GET", url)
        assert status == 401 and json.loads(body)["label"] == "REQUEST_EXPIRED"  # relayed as is

        async def signed_in_time() -> bool:  # the sidecar re-measures at once; a retry succeeds
            return (await call("GET", url))[0] == 200

        await eventually(signed_in_time, 5, "a request signed with Gate's new time", step=0.1)
        assert s.sidecar.sidecar.clock.offset_s == pytest.approx(-240, abs=2)
