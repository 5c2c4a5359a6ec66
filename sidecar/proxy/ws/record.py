"""What observers learn of WebSocket traffic: one record per signed or refused bot frame, and
per-key counters (connections, frames each way) read at scrape time.

Records carry names only (channel, event, rule, label): never a payload, a ``req_param``, a key
or a signature.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.policy.mode import WouldDeny
from sidecar.policy.origin import Origin


@dataclass(slots=True)
class FrameRecord:
    key: str
    product: str
    channel: str
    event: str
    decision: str  # sign | deny | refuse (a frame that cannot be checked) | error
    time: float = field(default_factory=time.time)
    rule: str | None = None
    origin: Origin | None = None
    label: str | None = None  # the SIDECAR_* label of a refusal
    guard: str | None = None  # the trading guard that refused the frame
    rate_group: str | None = None  # the rate budget group a trading-API call counted against
    version: str | None = None  # the secret version a signed frame was signed with
    session: int = 0  # the bot connection's number, to follow one session in the log
    client_cert: str | None = None  # the bot's TLS client certificate CN (mTLS listeners)
    would_deny: WouldDeny | None = None  # what warn mode forwarded (sidecar.proxy.safety)


FrameObserver = Callable[[FrameRecord], None]


@dataclass
class WsStats:
    """Counters for one key, plain integers on the hot path; exported by sidecar.ops."""

    open: int = 0  # bot connections open now
    accepted: int = 0
    rejected: int = 0  # upgrades refused (over max_connections, bad path)
    frames_in: int = 0  # from the bot
    frames_out: int = 0  # to the bot
    resumed: int = 0  # sessions moved to a new key without closing
    closed_by_rotation: int = 0
