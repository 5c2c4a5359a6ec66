"""The WebSocket upgrade on a key's listener: path, limits, the upstream connection, the session.

Everything that can refuse an upgrade does so before it, by raising a ``SidecarError`` that the
listener answers as an ordinary ``SIDECAR_*`` JSON answer: an unknown path or settle (404,
before any upstream connection), more than ``keys[].ws.max_connections`` sessions (429), Gate
unreachable (502).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sidecar.errors import BadRequest, NotFound, TooManyConnections
from sidecar.gate.ws_paths import ws_endpoint
from sidecar.proxy.client_tokens import CLIENTS
from sidecar.proxy.ws.bot import BotLeg
from sidecar.proxy.ws.frames import WsKey
from sidecar.proxy.ws.runtime import WsRuntime
from sidecar.proxy.ws.upstream import upgrade_headers

#: Answers the upgrade (``101``) and gives the bot's side, reading messages up to the limit.
Accept = Callable[[int], BotLeg]


async def serve_ws(
    target: str,
    request_headers: list[tuple[str, str]],
    client_cert: str | None,
    key: WsKey,
    ws: WsRuntime,
    accept: Accept,
) -> None:
    """Relay one bot connection (the upgrade request's target and headers; the bot's
    certificate CN under mTLS); raises a SidecarError to refuse the upgrade."""
    raw_path, _, raw_query = target.partition("?")
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
    # The relay (and aiohttp, its client to Gate) is imported with the first session: a sidecar
    # whose bots only speak REST never loads it (sidecar.proxy.ws.upstream).
    from sidecar.proxy.ws.session import Session

    try:
        headers = upgrade_headers(request_headers)
        upstream = await ws.upstream.connect(endpoint, headers, settings.max_frame_bytes)
        try:
            bot = accept(settings.max_frame_bytes)
        except BaseException:
            await upstream.close()
            raise
        ws.stats.accepted += 1
        session = Session(key, ws, endpoint, bot, upstream, headers, client_cert)
        ws.sessions.add(session)
        # Admission holds for the session's life: closed once its client token is revoked.
        release = CLIENTS.hold(key, request_headers, session.client_revoked)
        if release is None:  # revoked since admission, a moment ago
            session.client_revoked()
        try:
            await session.run()
        finally:
            if release is not None:
                release()
            ws.sessions.discard(session)
    finally:
        ws.stats.open -= 1


async def close_sessions(
    ws: WsRuntime, code: int = 1001, reason: str = "sidecar shutting down"
) -> None:
    """Close every session of a key (its listener is closing), all at once."""
    await asyncio.gather(*(s.close(code, reason) for s in list(ws.sessions)))
