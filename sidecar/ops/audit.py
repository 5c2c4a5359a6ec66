"""One record per bot request, filled in as the request goes, handed to observers at the end.

Observers (the audit log line, Prometheus metrics, clock sync) run after the response is built;
they must be cheap and never raise into the request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sidecar.audit")


@dataclass(slots=True)
class RequestRecord:
    key: str
    method: str
    path: str
    query_len: int
    started: float = field(default_factory=time.perf_counter)
    time: float = field(default_factory=time.time)
    decision: str = "error"  # allow | deny | error
    rule: str | None = None
    status: int = 0
    label: str | None = None  # Gate's or the sidecar's error label
    upstream_status: int | None = None
    upstream_latency_s: float | None = None
    upstream_date: str | None = None  # Gate's Date header: clock drift detection, not logged
    latency_s: float | None = None
    version: str | None = None

    def finish(self, status: int) -> None:
        self.status = status
        self.latency_s = time.perf_counter() - self.started

    @property
    def added_latency_s(self) -> float | None:
        """Time the sidecar itself added: total minus the upstream round trip."""
        if self.latency_s is None:
            return None
        return self.latency_s - (self.upstream_latency_s or 0.0)


Observer = Callable[[RequestRecord], None]


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def audit_fields(record: RequestRecord) -> dict[str, Any]:
    """The audit line's fields, listed one by one: a field added to the record for another
    observer must not reach the log by accident. Never a body, a query value or a secret."""
    return {
        "time": _iso(record.time),
        "key": record.key,
        "method": record.method,
        "path": record.path,
        "query_len": record.query_len,
        "decision": record.decision,
        "rule": record.rule,
        "status": record.status,
        "label": record.label,
        "upstream_status": record.upstream_status,
        "upstream_latency_s": _seconds(record.upstream_latency_s),
        "latency_s": _seconds(record.latency_s),
        "added_latency_s": _seconds(record.added_latency_s),
        "version": record.version,
    }


def audit_line(record: RequestRecord) -> None:
    log.info("request", extra={"audit": audit_fields(record)})
