"""A key's listener served by aiohttp: bytes in, :func:`sidecar.proxy.pipeline.answer`, bytes out.

aiohttp parses HTTP and decodes a compressed request body; everything the sidecar decides is in
:mod:`sidecar.proxy.pipeline`, shared with any other listener.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from sidecar.errors import BadRequest, BodyTooLarge, for_status
from sidecar.proxy.pipeline import (
    BotRequest,
    BotResponse,
    KeyRuntime,
    Peer,
    answer,
    error_response,
    finish,
    new_record,
)

KEY_RUNTIME = web.AppKey("key_runtime", KeyRuntime)


def _web_response(response: BotResponse) -> web.Response:
    out = web.Response(status=response.status, body=response.body)
    for name, value in response.headers:
        out.headers.add(name, value)
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
        return b"".join(chunks)

    # raw_path is the request target exactly as received.
    return BotRequest(
        request.method,
        request.raw_path,
        list(request.headers.items()),
        read_body,
        Peer(request.transport),
    )


async def handle(request: web.Request) -> web.StreamResponse:
    return _web_response(await answer(request.app[KEY_RUNTIME], _body_reader(request)))


@web.middleware
async def framework_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (e.g. a target its router cannot even match) still answer in the
    sidecar's JSON shape, never as an HTML page or a 500, and are recorded like any other."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        key = request.app[KEY_RUNTIME]
        record = new_record(key, request.method, request.raw_path)
        mapped = for_status(exc.status, exc.reason or "refused")
        record.label = mapped.label
        response = error_response(mapped)
        finish(key, record, response.status)
        return _web_response(response)


def create_key_app(runtime: KeyRuntime) -> web.Application:
    app = web.Application(middlewares=[framework_errors], client_max_size=runtime.max_body_bytes)
    app[KEY_RUNTIME] = runtime
    # [\s\S]: the router matches the *decoded* path, where `.` would stop at an encoded newline.
    app.router.add_route("*", r"/{tail:[\s\S]*}", handle)
    return app
