"""The WebSocket upgrade on a key's listener: path, limits, the upstream connection, the session.

Everything that can refuse an upgrade does so before it, as an ordinary ``SIDECAR_*`` JSON
answer: an unknown path or settle (404, before any upstream connection), more than
``keys[].ws.max_connections`` sessions (429), Gate unreachable (502).
"""

from __future__ import annotations

from aiohttp import web

from sidecar.errors import BadRequest, NotFound, TooManyConnections
from sidecar.gate.ws_paths import ws_endpoint
from sidecar.proxy.client_tokens import CLIENTS
from sidecar.proxy.peer import peer_from_transport
from sidecar.proxy.ws.frames import WsKey
from sidecar.proxy.ws.runtime import WsRuntime
from sidecar.proxy.ws.session import Session
from sidecar.proxy.ws.upstream import upgrade_headers


def is_upgrade(request: web.Request) -> bool:
    return request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"


async def serve_ws(request: web.Request, key: WsKey, ws: WsRuntime) -> web.StreamResponse:
    """Relay one bot connection; raises a SidecarError to refuse the upgrade."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    endpoint = ws_endpoint(raw_path)
    if isinstance(endpoint, str):
        ws.stats.rejected += 1
        raise NotFound(endpoint)
    if raw_query:
        ws.stats.rejected += 1
        raise BadRequest("a WebSocket URL takes no query string")
    settings = ws.settings
    if ws.stats.open >= settings.max_connections:
        ws.stats.rejected += 1
        raise TooManyConnections(
            f"{key.name} already has {ws.stats.open} WebSocket connections "
            f"(keys[].ws.max_connections: {settings.max_connections})"
        )
    ws.stats.open += 1  # counted before any await: concurrent upgrades cannot overshoot
    try:
        headers = upgrade_headers(list(request.headers.items()))
        upstream = await ws.upstream.connect(endpoint, headers, settings.max_frame_bytes)
        bot = web.WebSocketResponse(autoping=False, max_msg_size=settings.max_frame_bytes)
        try:
            await bot.prepare(request)
        except BaseException:
            await upstream.close()
            raise
        ws.stats.accepted += 1
        cert = peer_from_transport(request.transport).client_cert
        session = Session(key, ws, endpoint, bot, upstream, headers, cert)
        ws.sessions.add(session)
        # Admission holds for the session's life: closed once its client token is revoked.
        release = CLIENTS.hold(key, request.headers.items(), session.client_revoked)
        if release is None:  # revoked since admission, a moment ago
            session.client_revoked()
        try:
            await session.run()
        finally:
            if release is not None:
                release()
            ws.sessions.discard(session)
        return bot
    finally:
        ws.stats.open -= 1


async def close_sessions(
    ws: WsRuntime, code: int = 1001, reason: str = "sidecar shutting down"
) -> None:
    """Close every session of a key (its listener is closing)."""
    for session in list(ws.sessions):
        await session.close(code, reason)
