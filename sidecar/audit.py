"""One record per bot request, filled in as the request goes, handed to observers at the end.

Observers (the audit log line, Prometheus metrics) run after the response is built; they must be
cheap and never raise into the request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

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


def audit_line(record: RequestRecord) -> None:
    fields = asdict(record)
    fields.pop("started")
    for name in ("latency_s", "upstream_latency_s"):
        if fields[name] is not None:
            fields[name] = round(fields[name], 6)
    log.info("request", extra={"audit": fields})
