"""One record per bot request, filled in as the request goes, handed to observers at the end.

Observers (the audit log line, Prometheus metrics, clock sync) run after the response is built;
they must be cheap and never raise into the request path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.policy.mode import WouldDeny
from sidecar.policy.origin import Origin


@dataclass(slots=True)
class RequestRecord:
    key: str
    method: str
    path: str
    query_len: int
    started: float = field(default_factory=time.perf_counter)
    time: float = field(default_factory=time.time)
    decision: str = "error"  # allow | deny | would_deny (warn mode forwarded it) | error
    rule: str | None = None  # the deciding rule's label
    origin: Origin | None = None  # where the deciding rule comes from
    status: int = 0
    label: str | None = None  # Gate's or the sidecar's error label
    upstream_status: int | None = None
    upstream_latency_s: float | None = None
    upstream_date: str | None = None  # Gate's Date header: clock drift detection, not logged
    latency_s: float | None = None
    version: str | None = None
    guard: str | None = None  # the trading guard that refused the request (sidecar.policy.guards)
    rate_group: str | None = None  # the rate budget group the request counted against
    client_cert: str | None = None  # the bot's TLS client certificate CN (mTLS listeners)
    would_deny: WouldDeny | None = None  # what warn mode forwarded (sidecar.proxy.safety)

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
