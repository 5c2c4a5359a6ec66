"""The WebSocket settings: ``upstream.ws`` (where Gate's sockets are) and ``keys[].ws``.

Beside the relay (sidecar.proxy.ws) rather than in it: ``upstream:`` (sidecar.proxy.forwarder)
holds ``upstream.ws``, and the relay itself depends on the forwarder's module.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from sidecar.settings import PositiveSeconds, Strict

_WS_URL = re.compile(r"wss?://[^/?#\s]+(/[^?#\s]*)?")


def _ws_url(value: str, *, settled: bool) -> str:
    if not _WS_URL.fullmatch(value):
        raise ValueError("must be ws://host[:port]/path or wss://host[:port]/path")
    if settled and "{settle}" not in value:
        raise ValueError("must hold {settle} (usdt or btc is put in its place)")
    if not settled and "{settle}" in value:
        raise ValueError("the spot endpoint has no {settle}")
    return value


class UpstreamWsConfig(Strict):
    """``upstream.ws``: Gate's WebSocket endpoints; ``{settle}`` becomes ``usdt`` or ``btc``."""

    spot: str = "wss://api.gateio.ws/ws/v4/"
    futures: str = "wss://fx-ws.gateio.ws/v4/ws/{settle}"
    delivery: str = "wss://fx-ws.gateio.ws/v4/ws/delivery/{settle}"
    options: str = "wss://op-ws.gateio.live/v4/ws/{settle}"

    @field_validator("spot")
    @classmethod
    def _spot(cls, value: str) -> str:
        return _ws_url(value, settled=False)

    @field_validator("futures", "delivery", "options")
    @classmethod
    def _settled(cls, value: str) -> str:
        return _ws_url(value, settled=True)

    def url(self, product: str) -> str:
        url: str = getattr(self, product)
        return url


OnRotation = Literal["resume", "close", "keep"]


class KeyWsConfig(Strict):
    """``keys[].ws``: one key's WebSocket limits and what a rotation does to open sessions."""

    max_connections: Annotated[int, Field(ge=0)] = 16  # 0: this key serves no WebSocket
    max_frame_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    idle_timeout_s: PositiveSeconds = 120.0
    on_rotation: OnRotation = "resume"
