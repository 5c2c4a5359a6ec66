"""Gate's WebSocket signatures: private channel subscriptions and the trading API. Pure.

The rules (Gate API v4 WebSocket docs, "Authentication" and "WebSocket API"; what the real SDKs
sign is in the reference notes):

- A private channel's ``subscribe``/``unsubscribe`` frame carries
  ``auth: {method: "api_key", KEY, SIGN}``, ``SIGN = hex HMAC-SHA512(secret,
  "channel=<channel>&event=<event>&time=<time>")``.
- A trading-API frame (``event: "api"``) carries ``payload.api_key``, ``payload.timestamp`` and
  ``payload.signature = hex HMAC-SHA512(secret, "api\\n<channel>\\n<req_param>\\n<timestamp>")``
  where ``<req_param>`` is the JSON text of ``payload.req_param`` *exactly as it appears in the
  frame*: the three SDKs send ``{}``, ``{}`` and ``""`` at login and all work, which only a
  server hashing the text as sent can explain.

So the sidecar never signs a re-serialisation of what it forwards: :func:`encode_frame` writes
the frame, and :func:`api_sign_text` hashes the very same text of ``req_param`` (``json.dumps``
of a value nested in a document is the same text as ``json.dumps`` of the value alone, with the
same settings).
"""

from __future__ import annotations

import json
from typing import Any

from sidecar.gate.signing import Signer

API_EVENT = "api"
SUB_EVENTS = frozenset({"subscribe", "unsubscribe"})


def channel_sign_text(channel: str, event: str, time: int) -> bytes:
    return f"channel={channel}&event={event}&time={time}".encode()


def api_sign_text(channel: str, req_param_text: str, timestamp: str) -> bytes:
    return f"{API_EVENT}\n{channel}\n{req_param_text}\n{timestamp}".encode()


def encode_json(value: object) -> str:
    """The one serialisation the sidecar forwards: compact, UTF-8 kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


async def sign_subscription(
    frame: dict[str, Any], signer: Signer, api_key: str, time: int
) -> dict[str, Any]:
    """The frame with ``time`` and a fresh ``auth`` (whatever the bot sent is replaced)."""
    channel, event = str(frame.get("channel")), str(frame.get("event"))
    sign = await signer.sign(channel_sign_text(channel, event, time))
    return {**frame, "time": time, "auth": {"method": "api_key", "KEY": api_key, "SIGN": sign}}


async def sign_api_request(frame: dict[str, Any], signer: Signer, api_key: str, time: int) -> str:
    """The forwarded text of a trading-API frame: ``time`` and ``payload.timestamp`` both set to
    ``time``, ``payload.api_key`` and ``payload.signature`` filled in over the exact text of
    ``req_param`` in the returned frame. ``payload`` must be an object."""
    payload: dict[str, Any] = frame["payload"]
    timestamp = str(time)
    req_param = payload.get("req_param", "")
    # gateio-api (Node) signs with `time` but appends a delay to `timestamp` as text: one fresh
    # value in both makes every client's frame consistent, whichever field Gate reads.
    signature = await signer.sign(
        api_sign_text(str(frame.get("channel")), encode_json(req_param), timestamp)
    )
    signed = {
        **payload,
        "api_key": api_key,
        "timestamp": timestamp,
        "signature": signature,
        "req_param": req_param,
    }
    return encode_json({**frame, "time": time, "payload": signed})
