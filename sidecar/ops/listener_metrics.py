"""Refusals made outside any key's request flow: the admin listener's, as a metric and a line.

A key listener's refusals (parser errors, deadlines, too many connections) are request records
like any other (audit line, ``gate_sidecar_requests``); the admin listener has no key, so its
refusals are counted here, on the app's own registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sidecar.errors import SidecarError
from sidecar.ops.exposition import CollectorRegistry, Counter

log = logging.getLogger("sidecar.admin")


def admin_refusals(registry: CollectorRegistry) -> Callable[[SidecarError], None]:
    """The ``refuse`` callback of the admin listener, counting on ``registry``."""
    counter = Counter(
        "gate_sidecar_admin_refusals",
        "Requests or connections the admin listener refused, by label.",
        ["label"],
        registry=registry,
    )

    def refuse(exc: SidecarError) -> None:
        counter.labels(exc.label).inc()
        log.info("admin listener refused a request", extra={"label": exc.label})

    return refuse
