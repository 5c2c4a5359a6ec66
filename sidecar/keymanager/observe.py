"""The manager's audit line (one per step) and its metrics.

An audit line names the account, the step, the key's fingerprint (never its id in full, never a
secret) and a detail; the metrics follow the sidecar's naming (``gate_sidecar_keys_*``).
"""

from __future__ import annotations

import enum
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.aiohttp import make_aiohttp_handler

from sidecar.credentials.slot import fingerprint
from sidecar.ops.logs import iso_time
from sidecar.ops.metrics import PREFIX

log = logging.getLogger("sidecar.keys.audit")
NAME = f"{PREFIX}_keys"


class Event(enum.Enum):
    MINTED = "minted"
    ACTIVATED = "activated"
    STORED = "stored"
    RETIRED = "retired"
    ORPHAN_DELETED = "orphan_deleted"
    DRIFT_REPAIRED = "drift_repaired"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    ROTATION_FAILED = "rotation_failed"
    RESUMED = "resumed"


def audit(event: Event, account: str, key: str | None = None, **detail: Any) -> None:
    """One audit line; ``key`` is a Gate key id, shown only as its fingerprint."""
    fields: dict[str, Any] = {
        "time": iso_time(time.time()),
        "event": event.value,
        "account": account,
        "key_fp": None if key is None else fingerprint(key),
        **detail,
    }
    log.info(f"key manager: {event.value}", extra={"audit": fields})


class ManagerMetrics:
    def __init__(self) -> None:
        self.registry = reg = CollectorRegistry()
        self.key_age = Gauge(
            f"{NAME}_key_age_seconds",
            "Age of the key the store holds, by account.",
            ["account"],
            registry=reg,
        )
        self.rotate_every = Gauge(
            f"{NAME}_rotate_every_seconds",
            "Configured rotate_every, by account.",
            ["account"],
            registry=reg,
        )
        self.next_rotation = Gauge(
            f"{NAME}_next_rotation_timestamp_seconds",
            "When the next rotation is due (unix seconds), by account.",
            ["account"],
            registry=reg,
        )
        self.rotations = Counter(
            f"{NAME}_rotations",
            "Rotations by account and result (ok, failed).",
            ["account", "result"],
            registry=reg,
        )
        self.orphans = Counter(
            f"{NAME}_orphans_deleted",
            "Minted keys whose secret was lost, deleted at Gate.",
            ["account"],
            registry=reg,
        )
        self.retired = Counter(
            f"{NAME}_retired", "Previous keys deleted at Gate.", ["account"], registry=reg
        )
        self.drift = Counter(
            f"{NAME}_drift_repairs",
            "Keys whose perms or whitelist were put back.",
            ["account"],
            registry=reg,
        )
        self.gate_retries = Counter(
            f"{NAME}_gate_retries", "Gate calls retried (429, 5xx, no answer).", registry=reg
        )
        self.lock_held = Gauge(
            f"{NAME}_lock_held", "1 while this manager holds the lock.", registry=reg
        )
        self._handler = make_aiohttp_handler(self.registry)

    async def respond(self, request: web.Request) -> web.StreamResponse:
        return await self._handler(request)
