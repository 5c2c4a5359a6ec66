"""A key's listener served by aiohttp: bytes in, :func:`sidecar.proxy.pipeline.answer`, bytes out.

aiohttp parses HTTP and decodes a compressed request body; everything the sidecar decides is in
:mod:`sidecar.proxy.pipeline`, shared with any other listener.
"""

from __future__ import annotations

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.typedefs import Handler

from sidecar.errors import (
    BadRequest,
    BodyTooLarge,
    ClientDisconnected,
    HeadersTooLarge,
    SidecarError,
    VersionNotSupported,
    for_status,
)
from sidecar.proxy.peer import peer_from_transport
from sidecar.proxy.pipeline import (
    BotRequest,
    BotResponse,
    KeyRuntime,
    answer,
    error_response,
    finish,
    new_record,
)
from sidecar.proxy.ws.handler import close_sessions, is_upgrade, serve_ws

KEY_RUNTIME = web.AppKey("key_runtime", KeyRuntime)


def _web_response(response: BotResponse) -> web.Response:
    out = web.Response(status=response.status, body=response.body)
    for name, value in response.headers:
        out.headers.add(name, value)
    if response.close:
        out.force_close()
    return out


def _body_reader(request: web.Request) -> BotRequest:
    async def read_body(limit: int) -> bytes:
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"request body exceeds {limit} bytes")
                chunks.append(chunk)
        except web.RequestPayloadError:
            # The client's fault (a gzip/deflate body that does not decode, broken chunking): a
            # 400, not an internal error.
            raise BadRequest(
                "the request body cannot be read (bad Content-Encoding or chunking)"
            ) from None
        except ConnectionError:
            # The bot went away mid-body: nothing was signed or sent, and no one reads this.
            raise ClientDisconnected("the client closed the connection mid-body") from None
        return b"".join(chunks)

    # raw_path is the request target exactly as received.
    return BotRequest(
        request.method,
        request.raw_path,
        list(request.headers.items()),
        read_body,
        peer_from_transport(request.transport),
    )


async def handle(request: web.Request) -> web.StreamResponse:
    runtime = request.app[KEY_RUNTIME]
    refusal = head_refusal(request, runtime.max_header_bytes)
    if refusal is not None:
        return _refused(runtime, request, refusal)
    if runtime.ws is not None and is_upgrade(request):
        try:
            # The same admission as REST: a browser page opening a WebSocket to a key's listener
            # (cross-site WebSocket hijacking) is refused before anything reaches Gate.
            runtime.admission.check(
                list(request.headers.items()), peer_from_transport(request.transport)
            )
            return await serve_ws(request, runtime, runtime.ws)
        except SidecarError as exc:  # refused before the upgrade: an ordinary JSON answer
            return _refused(runtime, request, exc)
    return _web_response(await answer(runtime, _body_reader(request)))


HTTP_1 = (HttpVersion10, HttpVersion11)


def head_refusal(request: web.BaseRequest, max_header_bytes: int | None) -> SidecarError | None:
    """A request line that is not HTTP/1.x (505), or a whole head over ``max_header_bytes``
    that arrived at once (431; a head arriving in pieces is capped by the listener as it comes).
    Shared by every aiohttp app the sidecar serves."""
    if request.version not in HTTP_1:
        return VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served")
    if max_header_bytes is not None:
        size = len(request.method) + len(request.raw_path) + 11
        size += sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
        if size > max_header_bytes:
            return HeadersTooLarge(f"the request head exceeds {max_header_bytes} bytes")
    return None


def _refused(key: KeyRuntime, request: web.Request, exc: SidecarError) -> web.Response:
    record = new_record(
        key, request.method, request.raw_path, peer_from_transport(request.transport)
    )
    record.label = exc.label
    response = error_response(exc)
    response.close = response.close or isinstance(exc, VersionNotSupported | HeadersTooLarge)
    finish(key, record, response.status)
    return _web_response(response)


async def _close_sessions(app: web.Application) -> None:
    ws = app[KEY_RUNTIME].ws
    if ws is not None:
        await close_sessions(ws)


@web.middleware
async def framework_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (e.g. a target its router cannot even match) still answer in the
    sidecar's JSON shape, never as an HTML page or a 500, and are recorded like any other."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _refused(
            request.app[KEY_RUNTIME], request, for_status(exc.status, exc.reason or "refused")
        )


def create_key_app(runtime: KeyRuntime) -> web.Application:
    app = web.Application(middlewares=[framework_errors], client_max_size=runtime.max_body_bytes)
    app[KEY_RUNTIME] = runtime
    # WebSocket upgrades (sidecar.proxy.ws) are told apart from REST inside the one handler; the
    # sessions are closed (1001) when the listener shuts down rather than waited for.
    app.on_shutdown.append(_close_sessions)
    # [\s\S]: the router matches the *decoded* path, where `.` would stop at an encoded newline.
    app.router.add_route("*", r"/{tail:[\s\S]*}", handle)
    return app
