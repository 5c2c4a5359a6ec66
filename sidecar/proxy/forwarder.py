"""The forwarding step's contract: one upstream request out, one buffered response back.

The key listener's handler builds an :class:`UpstreamRequest` and gets an
:class:`UpstreamResponse` from whatever :class:`Forwarder` the runtime was given
(:class:`~sidecar.proxy.lean_forwarder.LeanForwarder`, or a test double). Nothing else knows
how bytes reach Gate, so a second implementation replaces the first without any other change, as
long as it passes the one contract suite (``tests/test_forward_contract.py``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import Field, field_validator, model_validator

from sidecar.errors import StaleConnection
from sidecar.gate.head import READ_FROM_ANSWER, decode_lines, encode_lines
from sidecar.gate.headers import header_value, relay_headers
from sidecar.gate.labels import error_label, json_answer
from sidecar.proxy.ws_settings import UpstreamWsConfig
from sidecar.settings import PositiveSeconds, Strict, refuse_removed


class UpstreamConfig(Strict):
    """The ``upstream:`` section: where Gate is and how to reach it."""

    base_url: str = "https://api.gateio.ws"
    connect_timeout_s: PositiveSeconds = 5.0
    timeout_s: PositiveSeconds = 30.0
    ca_file: Path | None = None
    max_connections: Annotated[int, Field(ge=1)] = 100
    ws: UpstreamWsConfig = UpstreamWsConfig()  # Gate's WebSocket endpoints
    # Gate's largest answers (a full order book, a long history page) are a few MiB; beyond this
    # the bot gets 502 SIDECAR_UPSTREAM_TOO_LARGE instead of the sidecar buffering without bound.
    max_response_bytes: Annotated[int, Field(ge=1)] = 64 * 1024 * 1024

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: object) -> object:
        why = "the lean forwarder is the only one (the aiohttp forwarder is gone)"
        return refuse_removed(data, "upstream", {"transport": why})

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        m = re.fullmatch(r"(https?)://([^/?#\s]+)/?", value)
        if not m:
            raise ValueError(
                "must be scheme://host[:port] with no path (request paths keep /api/v4)"
            )
        return value.rstrip("/")


# Not frozen: a frozen dataclass sets each field through object.__setattr__, five times the cost
# of building it, once per request. Nothing changes one once built (a resend builds another).
@dataclass(slots=True)
class UpstreamRequest:
    method: str
    path: str  # canonical, already checked: sent byte for byte
    raw_query: str  # as the bot sent it: never re-encoded or re-ordered
    headers: list[tuple[str, str]]  # sent after ``lines``: the sidecar's own (KEY, Timestamp, SIGN)
    body: bytes
    lines: bytes = b""  # the bot's headers Gate gets, "Name: value\r\n" each, as received

    def all_headers(self) -> list[tuple[str, str]]:
        """Every header sent, in order, as text (``lines`` decoded, then ``headers``)."""
        return decode_lines(self.lines) + self.headers


# The names the sidecar asks an answer for, each as written in the code and in lower case.
_READ_NAMES = {
    spelled: lower
    for lower in READ_FROM_ANSWER
    for spelled in (lower.decode("ascii"), lower.decode("ascii").title())
}


class UpstreamResponse:
    """Gate's answer. The lean forwarder keeps its headers as bytes (``pairs``, every one as
    received; ``read``, those of :data:`~sidecar.gate.head.READ_FROM_ANSWER` by lower-case name;
    ``relayed``, the lines the bot gets): a value is decoded only when asked for, and
    :attr:`headers` decodes them all on first use."""

    __slots__ = ("_headers", "_pairs", "_read", "_relayed", "body", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]] | None,
        body: bytes,
        *,
        pairs: list[tuple[bytes, bytes]] | None = None,
        read: list[tuple[bytes, bytes]] | None = None,
        relayed: bytes | None = None,
    ) -> None:
        self.status = status
        self.body = body  # exactly as Gate sent it (still compressed if Gate compressed it)
        self._headers = headers  # None: decoded from ``pairs`` on first use
        self._pairs = pairs or []
        self._read = read
        self._relayed = relayed

    def __repr__(self) -> str:
        return f"UpstreamResponse(status={self.status}, body={len(self.body)} bytes)"

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header in Gate's order (duplicates kept), as text."""
        if self._headers is None:
            self._headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._pairs]
        return self._headers

    def read(self) -> list[tuple[str, str]]:
        """The headers the sidecar reads (READ_FROM_ANSWER; names in lower case), or every one."""
        if self._read is None:
            return self.headers
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._read]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` in any letter case, or None."""
        read = self._read
        if read is not None:
            # Every request reads Date (clock sync): the names asked for are looked up, not
            # lowered and encoded each time.
            lower = _READ_NAMES.get(name)
            if lower is None:
                lower = name.lower().encode("latin-1", "replace")
            if lower in READ_FROM_ANSWER:
                for n, v in read:
                    if n == lower:
                        return v.decode("latin-1")
                return None
        return header_value(self.headers, name)

    def relayed(self) -> bytes:
        """The header lines the bot gets: hop-by-hop ones and cookies dropped."""
        if self._relayed is None:
            self._relayed = encode_lines(relay_headers(self.headers))
        return self._relayed

    def gate_label(self) -> str | None:
        """Gate's error ``label`` (for audit and the canary), or None."""
        if self.status < 400:  # no label to read: skip the Content-Encoding lookup
            return None
        return error_label(self.status, self.header("Content-Encoding"), self.body)

    def json(self) -> object:
        """The answer's JSON document (decompressed if Gate compressed it), or None."""
        return json_answer(self.header("Content-Encoding"), self.body)


class Forwarder(Protocol):
    """Sends one request to Gate and returns its whole answer.

    The contract every implementation keeps (each point is a test in the contract suite):

    - **What is sent.** ``request.method``, then ``base_url + path`` and, when ``raw_query`` is
      not empty, ``"?" + raw_query``, byte for byte: no re-quoting, no dot-segment resolution, no
      re-ordering. Exactly ``request.lines`` (the bot's, as bytes) then ``request.headers``, in
      order, plus only ``Host`` and the body's framing (``Content-Length``); never ``Accept``,
      ``Accept-Encoding``, ``User-Agent``, ``Content-Type``, a cookie or anything else the bot
      did not send. The body byte for byte.
    - **What comes back.** The status, every header in Gate's order (duplicates kept), and the
      body exactly as received: never decompressed, never re-encoded. Redirects are returned,
      never followed. Cookies are never stored or replayed.
    - **Never twice.** :meth:`send` puts the request on the wire at most once, whatever the
      method and whatever happens: it never resends by itself (nor lets its HTTP library do so).
      Resending is decided in one place, :func:`deliver`, which signs each copy afresh.
    - **Which failure may be resent.** When the request went out on a *reused* keep-alive
      connection and that connection failed before any byte of an answer arrived, :meth:`send`
      raises :class:`~sidecar.errors.StaleConnection` (the upstream most likely closed the idle
      connection as the request was written). Every other failure (a fresh connection, a partial
      answer, a timeout) raises something else, and is never resent.
    - **Errors.** Only :class:`~sidecar.errors.UpstreamUnavailable` (cannot connect, the
      connection failed, a malformed answer; ``StaleConnection`` is one),
      :class:`~sidecar.errors.UpstreamTooLarge` (the answer's body is over
      ``upstream.max_response_bytes``: nothing beyond the limit is buffered) and
      :class:`~sidecar.errors.UpstreamTimeout` (no whole answer within ``upstream.timeout_s``)
      are raised; their messages name no header, body or credential. Cancellation propagates as
      usual.
    - **Lifecycle.** Connections are pooled and kept alive across requests; :meth:`close` releases
      them, and nothing is sent after it.
    """

    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def close(self) -> None: ...


#: Builds the request to send, signed with the current time: called once per copy sent.
RequestBuilder = Callable[[], Awaitable[UpstreamRequest]]


async def deliver(
    forwarder: Forwarder, request: UpstreamRequest, rebuild: RequestBuilder
) -> UpstreamResponse:
    """Send one bot request; the one place the resend rule lives, for every forwarder.

    A request other than GET reaches the upstream at most once, whatever happens. A GET is sent
    again at most once, and only after :class:`~sidecar.errors.StaleConnection` (a reused
    keep-alive connection that failed before any byte of an answer): the copy is built anew, so
    it carries a fresh ``Timestamp`` and ``SIGN`` (``rebuild`` signs it again).
    """
    try:
        return await forwarder.send(request)
    except StaleConnection:
        if request.method != "GET":
            raise
    return await forwarder.send(await rebuild())
