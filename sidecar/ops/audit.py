"""The audit line: one JSON (or text) log line per bot request, from its record.

In the process (``gate-sidecar serve``) the JSON line is formatted here, field by field, and
queued on :data:`sidecar.ops.logs.AUDIT_SINK`, which writes each event-loop iteration's lines in
one write: ``logging``'s record, its formatter and a generic ``json.dumps`` cost about four times
as much per request. The line holds what :class:`~sidecar.ops.logs.JsonFormatter` writes for the
same fields, in the same order (tests/test_ops_logs.py checks that a JSON reader gets the same
document); only the seconds are written with six decimals (``0.250000``) rather than the
shortest form.
"""

from __future__ import annotations

import logging
from json.encoder import encode_basestring_ascii
from typing import Any

from sidecar.memo import Memo
from sidecar.ops.logs import AUDIT_SINK, TextFormatter, iso_time
from sidecar.policy.mode import WouldDeny
from sidecar.proxy.record import RequestRecord

log = logging.getLogger("sidecar.audit")

_TEXT = TextFormatter()


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def would_deny_text(would: WouldDeny | None) -> str | None:
    """What warn mode forwarded, for audit lines: ``guard max_notional: max_notional 50000 <
    notional ...`` (the message names the value)."""
    return None if would is None else f"{would.kind.value} {would.name}: {would.message}"


def audit_fields(record: RequestRecord) -> dict[str, Any]:
    """The audit line's fields, listed one by one: a field added to the record for another
    observer must not reach the log by accident. Never a body, a query value or a secret."""
    return {
        "time": iso_time(record.time),
        "key": record.key,
        "method": record.method,
        "path": record.path,
        "query_len": record.query_len,
        "decision": record.decision,
        "rule": record.rule,
        "guard": record.guard,
        "rate_group": record.rate_group,
        "status": record.status,
        "label": record.label,
        "upstream_status": record.upstream_status,
        "upstream_latency_s": _seconds(record.upstream_latency_s),
        "latency_s": _seconds(record.latency_s),
        "added_latency_s": _seconds(record.added_latency_s),
        "version": record.version,
        "client_cert": record.client_cert,
        "would_deny": would_deny_text(record.would_deny),
    }


# The JSON text of the fields that take a few values (key, method, decision, rule, guard,
# rate group, label, version, certificate name): encoded once, then looked up, which costs a
# fraction of a call to the encoder per field.
_ENCODED: Memo[str, str] = Memo()


def _str(value: str | None) -> str:
    # json.dumps's own string encoder (C): escapes and ASCII exactly as the formatter's dump.
    if value is None:
        return "null"
    text = _ENCODED.get(value)
    if text is None:
        text = _ENCODED.keep(value, encode_basestring_ascii(value), value)
    return text


# The line from "key" to "upstream_status" by those fields' values: a bot sends the same few
# requests again and again, each answered alike, so most lines share it with one before.
_Middle = tuple[
    str, str, str, int, str, str | None, str | None, str | None, int, str | None, int | None
]
_MIDDLES: Memo[_Middle, str] = Memo()


def _middle(fields: _Middle) -> str:
    key, method, path, query_len, decision, rule, guard, rate_group, status, label, upstream = (
        fields
    )
    text = (
        f'"key": {_str(key)}, "method": {_str(method)}, '
        f'"path": {encode_basestring_ascii(path)}, "query_len": {query_len}, '
        f'"decision": {_str(decision)}, "rule": {_str(rule)}, '
        f'"guard": {_str(guard)}, "rate_group": {_str(rate_group)}, '
        f'"status": {status}, "label": {_str(label)}, '
        f'"upstream_status": {"null" if upstream is None else upstream}, '
    )
    return _MIDDLES.keep(fields, text, path)


def audit_json(record: RequestRecord) -> str:
    """The JSON audit line of ``record`` with its newline: :func:`audit_fields` under the log
    line's ``level``, ``logger`` and ``msg``, as ``json.dumps`` would write it."""
    fields: _Middle = (
        record.key,
        record.method,
        record.path,
        record.query_len,
        record.decision,
        record.rule,
        record.guard,
        record.rate_group,
        record.status,
        record.label,
        record.upstream_status,
    )
    middle = _MIDDLES.get(fields) or _middle(fields)
    upstream = record.upstream_latency_s
    latency = record.latency_s
    cert = record.client_cert  # None unless client certificates are asked for: no call then
    would = record.would_deny
    return (
        f'{{"time": "{iso_time(record.time)}", "level": "info", "logger": "sidecar.audit", '
        f'"msg": "request", {middle}'
        f'"upstream_latency_s": {"null" if upstream is None else f"{upstream:.6f}"}, '
        f'"latency_s": {"null" if latency is None else f"{latency:.6f}"}, '
        f'"added_latency_s": '
        f"{'null' if latency is None else f'{latency - (upstream or 0.0):.6f}'}, "
        f'"version": {_str(record.version)}, '
        f'"client_cert": {"null" if cert is None else _str(cert)}, '
        f'"would_deny": {"null" if would is None else _str(would_deny_text(would))}}}\n'
    )


def audit_line(record: RequestRecord) -> None:
    sink = AUDIT_SINK
    if sink.stream is None:  # logging not set up by the process: a plain logging record
        log.info("request", extra={"audit": audit_fields(record)})
    elif not sink.enabled:
        return
    elif sink.json:
        sink.write(audit_json(record))
    else:  # the text format is for people reading a terminal: its cost does not matter
        line = log.makeRecord(log.name, logging.INFO, "", 0, "request", (), None)
        line.audit = audit_fields(record)
        sink.write(_TEXT.format(line) + "\n")
