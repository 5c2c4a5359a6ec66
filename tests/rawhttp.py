"""Raw HTTP/1.1 over a socket, for requests no client library would send as written."""

from __future__ import annotations

import asyncio


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one raw HTTP/1.x answer; status 0 when
    nothing came back."""
    if not data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    return status, headers, body if length is None else body[: int(length)]


async def raw_exchange(
    host: str, port: int, payload: bytes, *, timeout: float = 10.0
) -> tuple[int, bytes]:
    """Send ``payload`` byte for byte, read until the server closes; (status, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=timeout)
    finally:
        writer.close()
    status, _, body = parse_response(data)
    return status, body
