"""The forwarders ``upstream.transport`` may name.

Adding one: implement :class:`~sidecar.proxy.forwarder.Forwarder` in its own module (it must pass
``tests/test_forward_contract.py``) and add its constructor below.
"""

from __future__ import annotations

from collections.abc import Callable

from sidecar.proxy.aiohttp_forwarder import AiohttpForwarder
from sidecar.proxy.forwarder import Forwarder, UpstreamConfig
from sidecar.proxy.lean_forwarder import LeanForwarder

TRANSPORTS: dict[str, Callable[[UpstreamConfig], Forwarder]] = {
    "aiohttp": AiohttpForwarder,
    "lean": LeanForwarder,
}


def build_forwarder(cfg: UpstreamConfig) -> Forwarder:
    """The forwarder ``cfg.transport`` names (validated when the config was loaded)."""
    return TRANSPORTS[cfg.transport](cfg)
