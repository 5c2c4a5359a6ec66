"""Opening WebSocket connections to Gate (``upstream.ws``), with aiohttp's client.

One client session per sidecar, TLS from :func:`sidecar.tls.client_tls_context` (system trust
plus ``upstream.ca_file``). Pings are not answered automatically: the relay passes them through,
so the bot's liveness check measures the whole path.

aiohttp (about 9 MB of a sidecar's RSS) is imported when the first session opens, not with
this module: a sidecar whose bots only speak REST never loads it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar.errors import UpstreamUnavailable
from sidecar.gate.ws_paths import WsEndpoint
from sidecar.proxy.ws_settings import UpstreamWsConfig
from sidecar.tls import client_tls_context

# Headers of the bot's upgrade request that mean something to Gate's WebSocket servers (ccxt sends
# X-Gate-Size-Decimal so futures sizes arrive as decimal strings). Nothing else crosses: no
# cookie, no credential, no address of the bot.
FORWARDED_HEADERS = ("X-Gate-Size-Decimal", "X-Gate-Channel-Id")

if TYPE_CHECKING:
    import aiohttp


def upgrade_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    wanted = {name.lower(): name for name in FORWARDED_HEADERS}
    return {wanted[k.lower()]: v for k, v in headers if k.lower() in wanted}


class WsUpstream:
    def __init__(
        self, cfg: UpstreamWsConfig, *, connect_timeout_s: float, ca_file: Path | None = None
    ) -> None:
        self.cfg = cfg
        self.connect_timeout_s = connect_timeout_s
        self.ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None
        self._tls: ssl.SSLContext | None = None

    def url(self, endpoint: WsEndpoint) -> str:
        return endpoint.upstream_url(self.cfg.url(endpoint.product))

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp  # with the first session: see the module's docstring

        if self._session is None:  # created on first use, inside the running loop
            timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout_s)
            jar = aiohttp.DummyCookieJar()  # a cookie from Gate is never replayed
            self._session = aiohttp.ClientSession(timeout=timeout, cookie_jar=jar)
        return self._session

    async def connect(
        self, endpoint: WsEndpoint, headers: dict[str, str], max_msg_size: int
    ) -> aiohttp.ClientWebSocketResponse:
        """A new connection to Gate's endpoint; :class:`UpstreamUnavailable` when none opens."""
        import aiohttp  # with the first session: see the module's docstring

        url = self.url(endpoint)
        tls: ssl.SSLContext | bool = True  # aiohttp's default; only wss:// uses it
        if url.startswith("wss://"):
            if self._tls is None:
                self._tls = client_tls_context(self.ca_file)
            tls = self._tls
        try:
            return await self._client().ws_connect(
                url,
                headers=headers,
                autoping=False,
                compress=0,  # Gate's servers do not fully support permessage-deflate (gate-ws)
                max_msg_size=max_msg_size,
                ssl=tls,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The message names the endpoint kind, never a header (or anything the bot sent).
            raise UpstreamUnavailable(
                f"cannot open Gate's {endpoint.product} WebSocket ({type(exc).__name__})"
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
