"""The audit line of a WebSocket frame the sidecar signed or refused.

Names only: the channel, the event, the rule, the label, the secret version. Never the payload,
``req_param``, a key, a signature or anything else the frame carried.
"""

from __future__ import annotations

import logging
from typing import Any

from sidecar.ops.audit import would_deny_text
from sidecar.ops.logs import iso_time
from sidecar.proxy.ws.record import FrameRecord

log = logging.getLogger("sidecar.audit")


def frame_audit_fields(record: FrameRecord) -> dict[str, Any]:
    return {
        "time": iso_time(record.time),
        "key": record.key,
        "ws": record.product,
        "session": record.session,
        "channel": record.channel,
        "event": record.event,
        "decision": record.decision,
        "rule": record.rule,
        "label": record.label,
        "guard": record.guard,
        "rate_group": record.rate_group,
        "version": record.version,
        "client_cert": record.client_cert,
        "would_deny": would_deny_text(record.would_deny),
    }


def frame_audit_line(record: FrameRecord) -> None:
    log.info("ws frame", extra={"audit": frame_audit_fields(record)})
