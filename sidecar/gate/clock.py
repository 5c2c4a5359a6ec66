"""The time the sidecar signs with, and Gate's clock as its answers reveal it. Pure.

Gate refuses a ``Timestamp`` more than 60 s from its own clock (``REQUEST_EXPIRED``), so the
sidecar signs with local time corrected by a measured offset (kept current by
:mod:`sidecar.ops.clocksync`, which measures it with the public ``GET /api/v4/spot/time``).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable

SERVER_TIME_PATH = "/api/v4/spot/time"


class Clock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall  # the local clock, uncorrected
        self.offset_s = 0.0  # Gate's clock minus ours

    def now(self) -> int:
        """Integer seconds: the safe choice for Gate's ``Timestamp``."""
        return int(self.wall() + self.offset_s)


def offset_from_server_time(body: bytes, sent: float, received: float) -> float:
    """Gate's time minus ours from a ``/spot/time`` answer and the local send/receive times.

    The answer is assumed to be stamped half way through the round trip, so the error is at most
    half the round trip: milliseconds, against Gate's 60 s tolerance.
    """
    doc = json.loads(body)
    server_ms = doc.get("server_time") if isinstance(doc, dict) else None
    if isinstance(server_ms, bool) or not isinstance(server_ms, int | float):
        raise ValueError("no numeric server_time in the answer")
    return server_ms / 1000.0 - (sent + received) / 2.0


def parse_http_date(value: str) -> float | None:
    """Unix seconds from an HTTP ``Date`` header, or None when it is not a valid date."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return None if parsed.tzinfo is None else parsed.timestamp()
