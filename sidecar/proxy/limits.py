"""``server:`` limits every listener enforces (key listeners and the admin listener alike), so
that one slow or hostile client cannot hold the process: deadlines for a request's head and body,
an idle keep-alive timeout, a cap on open connections and on the size of a request's head.

Both are the same connection layer (:mod:`sidecar.proxy.lean_listener`), which enforces them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sidecar.settings import PositiveSeconds, Strict


class ListenerLimits(Strict):
    header_timeout_s: PositiveSeconds = 10.0  # first byte of a request head to its blank line
    body_timeout_s: PositiveSeconds = 30.0  # end of the head to the end of the body
    idle_timeout_s: PositiveSeconds = 60.0  # a keep-alive connection with no request
    max_connections: Annotated[int, Field(ge=1)] = 512  # per listener; beyond: 503 and close
    max_header_bytes: Annotated[int, Field(ge=1024)] = 32 * 1024  # request line + headers
    max_headers: Annotated[int, Field(ge=8)] = 100  # header fields in one request
