"""Which Gate WebSocket endpoint a bot-side path names. Pure.

The paths are those of Gate's own URLs, so a client needs only its host changed:
``/ws/v4/`` (spot), ``/v4/ws/{settle}`` and ``/v4/ws/futures/{settle}`` (perpetual futures),
``/v4/ws/delivery/{settle}`` and ``/v4/ws/options/{settle}``. The ``/v4/ws/futures/`` alias exists
because ccxt picks a connection's market type from the text of its URL (``fx``, ``/ws/futures/``,
``delivery``, ``/ws/options/``): through a bare ``/v4/ws/usdt`` its ``watch_positions`` fails.

Matched against the raw path exactly as received: nothing is decoded or repaired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SETTLES = ("usdt", "btc")
_SETTLED = re.compile(r"/v4/ws/(?:(futures|delivery|options)/)?([^/]+)")
BOT_PATHS = (
    "/ws/v4/",
    "/v4/ws/{settle}",
    "/v4/ws/futures/{settle}",
    "/v4/ws/delivery/{settle}",
    "/v4/ws/options/{settle}",
)


@dataclass(frozen=True, slots=True)
class WsEndpoint:
    product: str  # spot | futures | delivery | options
    settle: str  # usdt | btc; "" for spot

    def upstream_url(self, template: str) -> str:
        return template.replace("{settle}", self.settle)


def ws_endpoint(raw_path: str) -> WsEndpoint | str:
    """The endpoint ``raw_path`` names, or why it names none (a short, safe message)."""
    if raw_path == "/ws/v4/":
        return WsEndpoint("spot", "")
    m = _SETTLED.fullmatch(raw_path)
    if m is None:
        return f"no WebSocket endpoint here; use one of {', '.join(BOT_PATHS)}"
    if m[2] not in SETTLES:
        return f"settle must be one of {', '.join(SETTLES)}"
    return WsEndpoint(m[1] or "futures", m[2])
