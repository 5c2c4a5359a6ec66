"""The audit line and the two log formats."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator

import pytest

from sidecar.ops.audit import audit_fields, audit_json, audit_line
from sidecar.ops.logs import AUDIT_SINK, JsonFormatter, TextFormatter, iso_time, setup_logging
from sidecar.proxy.record import RequestRecord
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import call, ops_setup

AUDIT_FIELDS = {
    "time",
    "key",
    "method",
    "path",
    "query_len",
    "decision",
    "rule",
    "guard",
    "rate_group",
    "status",
    "label",
    "upstream_status",
    "upstream_latency_s",
    "latency_s",
    "added_latency_s",
    "version",
    "client_cert",
    "would_deny",
}


def _allowed_record() -> RequestRecord:
    record = RequestRecord("futures-bot", "POST", "/api/v4/futures/usdt/orders", 17, time=1e9)
    record.decision, record.rule, record.version = "allow", "preset futures-only: * /x/**", "7"
    record.upstream_status, record.upstream_latency_s = 201, 0.25
    record.upstream_date = "Sun, 09 Sep 2001 01:46:40 GMT"
    record.finish(201)
    record.latency_s = 0.2512345678
    return record


def test_the_audit_line_has_exactly_the_documented_fields() -> None:
    fields = audit_fields(_allowed_record())
    assert set(fields) == AUDIT_FIELDS
    assert fields["time"] == "2001-09-09T01:46:40.000Z"
    assert fields["query_len"] == 17 and fields["version"] == "7"
    assert fields["latency_s"] == 0.251235
    assert fields["added_latency_s"] == pytest.approx(0.001235, abs=1e-6)


def _emit(formatter: logging.Formatter, record: RequestRecord) -> str:
    handler = logging.handlers.BufferingHandler(capacity=100)
    logger = logging.getLogger("sidecar.audit")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        audit_line(record)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return formatter.format(handler.buffer[0])


def test_a_json_audit_line_is_one_object_with_every_field() -> None:
    line = _emit(JsonFormatter(), _allowed_record())
    assert "\n" not in line
    doc = json.loads(line)
    assert AUDIT_FIELDS <= set(doc)
    assert doc["msg"] == "request" and doc["logger"] == "sidecar.audit"
    assert doc["level"] == "info"
    assert doc["decision"] == "allow" and doc["upstream_status"] == 201
    assert "upstream_date" not in doc


def test_a_text_audit_line_is_readable_key_value_pairs() -> None:
    record = _allowed_record()
    line = _emit(TextFormatter(), record)
    assert "INFO    sidecar.audit: request time=2001-09-09T01:46:40.000Z key=futures-bot" in line
    assert 'rule="preset futures-only: * /x/**"' in line  # spaces: quoted
    assert "upstream_status=201" in line and "label=" not in line  # None is left out


def test_a_denied_request_names_the_rule_and_never_the_body_or_query() -> None:
    record = RequestRecord("k", "POST", "/api/v4/withdrawals", 12)
    record.decision, record.rule = "deny", "locked: moves funds out of the account"
    record.label = "SIDECAR_POLICY_DENIED"
    record.finish(403)
    doc = json.loads(_emit(JsonFormatter(), record))
    assert doc["rule"] == "locked: moves funds out of the account"
    assert doc["label"] == "SIDECAR_POLICY_DENIED" and doc["upstream_status"] is None
    assert doc["query_len"] == 12 and "query" not in doc and "body" not in doc


def test_extra_fields_and_exceptions_appear_in_both_formats() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, "f", 1, "failed", (), exc_info=__import__("sys").exc_info()
        )
    record.key = "k"
    record.problems = ["a: b", "c"]
    doc = json.loads(JsonFormatter().format(record))
    assert doc["key"] == "k" and doc["problems"] == ["a: b", "c"] and "boom" in doc["exc"]
    text = TextFormatter().format(record)
    first, _, rest = text.partition("\n")
    assert first.endswith('failed key=k problems=["a: b", "c"]') and "RuntimeError: boom" in rest


async def test_each_request_writes_exactly_one_audit_line(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.audit")
    async with ops_setup(exchange, {"bot": "futures-only"}) as s:
        await call("GET", s.url("bot", "/api/v4/futures/usdt/accounts?settle=usdt"))
        await call("POST", s.url("bot", "/api/v4/withdrawals"), b'{"amount": "1"}')
    lines = [r.audit for r in caplog.records if r.name == "sidecar.audit"]  # type: ignore[attr-defined]
    assert len(lines) == 2
    allowed, denied = lines
    assert set(allowed) == AUDIT_FIELDS
    assert allowed["key"] == "bot" and allowed["method"] == "GET"
    assert allowed["path"] == "/api/v4/futures/usdt/accounts" and allowed["query_len"] == 11
    assert allowed["decision"] == "allow" and allowed["rule"].startswith("preset futures-only")
    assert allowed["status"] == allowed["upstream_status"] == 200
    assert allowed["version"] == "env" and allowed["upstream_latency_s"] > 0
    assert denied["decision"] == "deny" and denied["rule"].startswith("locked: withdrawals")
    assert denied["status"] == 403 and denied["label"] == "SIDECAR_POLICY_DENIED"
    assert denied["upstream_status"] is None and denied["version"] is None
    assert "amount" not in caplog.text


# -- the audit sink: the process's audit lines, formatted without logging, written in batches --


class CountingStream(io.StringIO):
    """A stdout that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingStream]:
    """A counting stdout for setup_logging (called in the test: pytest sets its own stdout
    between a fixture and the test); logging as it was, after."""
    stream = CountingStream()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield stream
    finally:
        AUDIT_SINK.flush()
        AUDIT_SINK.stream = None
        root.handlers[:] = handlers
        root.setLevel(level)


def _setup(stream: CountingStream, fmt: str, level: str) -> None:
    """setup_logging as `serve` runs it, onto ``stream`` as stdout."""
    real = sys.stdout
    sys.stdout = stream
    try:
        setup_logging(fmt, level, audit_sink=True)
    finally:
        sys.stdout = real


def _odd_record(path: str) -> RequestRecord:
    record = _allowed_record()
    record.path, record.client_cert = path, 'CN "bot" \\ é'
    return record


@pytest.mark.parametrize(
    "record",
    [
        _allowed_record(),
        _odd_record('/api/v4/spot/"orders"\\\x01'),
        _odd_record("/api/v4/ünïcode/\u2028"),
        RequestRecord("k", "-", "-", 0, time=1.5),  # unfinished: no latency, no status
    ],
)
def test_the_fast_json_line_reads_as_the_formatters_line(record: RequestRecord) -> None:
    line = audit_json(record)
    assert line.endswith("\n") and "\n" not in line[:-1] and line.isascii()
    reference = json.loads(_emit(JsonFormatter(), record))
    assert list(json.loads(line).items()) == list(reference.items())  # same fields, same order


def test_audit_lines_go_out_in_one_write_per_loop_iteration(stdout: CountingStream) -> None:
    _setup(stdout, "json", "info")

    async def burst() -> int:
        for _ in range(50):
            audit_line(_allowed_record())
        written_now = stdout.writes
        await asyncio.sleep(0)  # hold: the end of this iteration: the queued flush runs
        await asyncio.sleep(0)  # hold: and the write it scheduled
        return written_now

    assert asyncio.run(burst()) == 0  # nothing written while the iteration runs
    assert stdout.writes == 1
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 50 and all(json.loads(x)["logger"] == "sidecar.audit" for x in lines)


def test_a_log_line_comes_after_the_audit_lines_queued_before_it(stdout: CountingStream) -> None:
    _setup(stdout, "json", "info")

    async def interleaved() -> None:
        audit_line(_allowed_record())
        logging.getLogger("sidecar.serve").info("shutting down")
        audit_line(_allowed_record())

    asyncio.run(interleaved())
    AUDIT_SINK.flush()
    msgs = [json.loads(x)["msg"] for x in stdout.getvalue().splitlines()]
    assert msgs == ["request", "shutting down", "request"]


def test_the_text_format_and_the_log_level_apply_to_the_fast_path(
    stdout: CountingStream,
) -> None:
    _setup(stdout, "text", "info")
    audit_line(_allowed_record())  # no loop running: written at once
    line = stdout.getvalue()
    assert "INFO    sidecar.audit: request time=2001-09-09T01:46:40.000Z key=futures-bot" in line
    assert line.endswith("\n") and line.count("\n") == 1
    _setup(stdout, "json", "warning")  # INFO lines hidden: the audit line too, as before
    audit_line(_allowed_record())
    assert stdout.getvalue() == line


def test_a_reload_keeps_the_audit_path_the_process_chose(stdout: CountingStream) -> None:
    """Only `serve` sends audit lines to the sink; a reload that changes the format or level
    (setup_logging without audit_sink) keeps whichever path was chosen, so a sidecar run in
    process (the tests' caplog) keeps its audit lines as logging records."""
    setup_logging("json", "debug")
    assert AUDIT_SINK.stream is None
    _setup(stdout, "json", "info")
    setup_logging("text", "info")
    assert AUDIT_SINK.stream is not None and not AUDIT_SINK.json


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key", "other-bot"),
        ("method", "PUT"),
        ("path", "/api/v4/futures/usdt/orders/1"),
        ("query_len", 18),
        ("decision", "would_deny"),
        ("rule", "preset futures-only: * /y/**"),
        ("guard", "max_notional"),
        ("rate_group", "futures-private"),
        ("status", 502),
        ("label", "SIDECAR_UPSTREAM_UNAVAILABLE"),
        ("upstream_status", 500),
    ],
)
def test_an_audit_line_differing_in_one_field_from_the_one_before_shows_its_own_value(
    field: str, value: object
) -> None:
    """The line's middle is kept by its fields' values: a line that differs from a line
    already written in any one of them is its own, never the one kept."""
    first = _allowed_record()
    audit_json(first)  # kept
    second = _allowed_record()
    setattr(second, field, value)
    doc = json.loads(audit_json(second))
    assert doc[field] == value
    assert json.loads(audit_json(first))[field] == getattr(first, field)


def test_the_audit_lines_kept_middles_are_bounded() -> None:
    from sidecar import memo
    from sidecar.ops import audit

    for i in range(memo.SIZE + 10):
        record = _allowed_record()
        record.path = f"/api/v4/futures/usdt/orders/{i}"  # ids: every line's middle is new
        assert json.loads(audit_json(record))["path"] == record.path
    assert len(audit._MIDDLES) <= memo.SIZE
    assert len(audit._ENCODED) <= memo.SIZE


def test_an_audit_line_with_a_long_path_is_written_whole_but_its_middle_not_kept() -> None:
    from sidecar.memo import PATH_MAX
    from sidecar.ops import audit

    record = _allowed_record()
    record.path = "/api/v4/spot/" + "a" * PATH_MAX
    assert json.loads(audit_json(record))["path"] == record.path
    assert all(fields[2] != record.path for fields in audit._MIDDLES)


def _iso_reference(ts: float) -> str:
    milli = int(ts * 1000.0)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(milli // 1000)) + f".{milli % 1000:03d}Z"


# Times in the order the lines are made: the same millisecond again (the kept text), the next
# millisecond of the same second, the next second, an earlier time (a clock set back), the
# last millisecond of a second, the first of a day.
ISO_TIMES = [
    (1765000000.1234, "2025-12-06T05:46:40.123Z"),
    (1765000000.1236, "2025-12-06T05:46:40.123Z"),
    (1765000000.1251, "2025-12-06T05:46:40.125Z"),
    (1765000001.0004, "2025-12-06T05:46:41.000Z"),
    (1764999999.5, "2025-12-06T05:46:39.500Z"),
    (1765000000.9995, "2025-12-06T05:46:40.999Z"),
    (1765065600.0, "2025-12-07T00:00:00.000Z"),
]


def test_log_times_are_utc_to_the_millisecond_whichever_time_came_before() -> None:
    for ts, expected in ISO_TIMES:
        assert iso_time(ts) == expected == _iso_reference(ts), ts
    for ts, expected in reversed(ISO_TIMES):  # each one again, after another was kept
        assert iso_time(ts) == expected, ts
