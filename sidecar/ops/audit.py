"""The audit line: one JSON (or text) log line per bot request, from its record."""

from __future__ import annotations

import logging
from typing import Any

from sidecar.ops.logs import iso_time
from sidecar.policy.mode import WouldDeny
from sidecar.proxy.record import RequestRecord

log = logging.getLogger("sidecar.audit")


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


def audit_line(record: RequestRecord) -> None:
    log.info("request", extra={"audit": audit_fields(record)})
