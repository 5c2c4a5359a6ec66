"""WebSocket signature checks the way Gate does them, written independently of the sidecar.

- Private channel (un)subscription: ``auth.SIGN`` must be hex HMAC-SHA512(secret,
  ``channel=<channel>&event=<event>&time=<time>``), ``time`` within the window, ``auth.KEY``
  known (Gate API v4 WebSocket docs, "Authentication").
- Trading API (``event: "api"``): ``payload.signature`` must be hex HMAC-SHA512(secret,
  ``api\\n<channel>\\n<req_param>\\n<timestamp>``) where ``<req_param>`` is the JSON text of
  ``payload.req_param`` *exactly as it appears in the frame* (only that explains why Gate
  accepts gate-ws's ``{}``, ccxt's ``{}`` and gateio-api's ``""`` alike), and ``timestamp``
  within the window.

The text is located by walking the frame with the standard library's own JSON scanner
(:func:`value_span`), never by re-serialising the parsed value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class WsAuthError(Exception):
    def __init__(self, label: str, message: str, code: int = 4) -> None:
        super().__init__(message)
        self.label, self.message, self.code = label, message, code


def _skip(text: str, at: int) -> int:
    m = _WS.match(text, at)
    return m.end() if m else at


def value_span(text: str, path: tuple[str, ...]) -> tuple[int, int] | None:
    """Where the value at ``path`` (object keys, outermost first) sits in the JSON ``text``."""
    start = _skip(text, 0)
    for name in path:
        if not text.startswith("{", start):
            return None
        at = _skip(text, start + 1)
        found = None
        while not text.startswith("}", at):
            key, at = json.decoder.scanstring(text, at + 1)  # type: ignore[attr-defined]
            at = _skip(text, at)
            at = _skip(text, at + 1)  # the colon
            _, end = _DECODER.raw_decode(text, at)
            if key == name:
                found = at  # the last copy wins, as json.loads decides
            at = _skip(text, end)
            if text.startswith(",", at):
                at = _skip(text, at + 1)
        if found is None:
            return None
        start = found
    _, end = _DECODER.raw_decode(text, start)
    return start, end


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha512).hexdigest()


def _check_time(value: Any, now: float, window_s: float) -> None:
    try:
        ts = float(value)
    except (TypeError, ValueError):
        ts = math.nan
    if not math.isfinite(ts):
        raise WsAuthError("INVALID_PARAM_VALUE", "time must be Unix seconds", code=2)
    if abs(now - ts) > window_s:
        raise WsAuthError("REQUEST_EXPIRED", "gap between request time and server time too big")


def verify_subscription(
    frame: Mapping[str, Any], secrets: Mapping[str, str], now: float, window_s: float
) -> str:
    """The verified API key of a private (un)subscription, or WsAuthError."""
    auth = frame.get("auth")
    if not isinstance(auth, dict) or auth.get("method") != "api_key":
        raise WsAuthError("MISSING_REQUIRED_HEADER", "auth with method api_key is required")
    key, sign = auth.get("KEY"), auth.get("SIGN")
    _check_time(frame.get("time"), now, window_s)
    secret = secrets.get(key) if isinstance(key, str) else None
    if secret is None:
        raise WsAuthError("INVALID_KEY", "Invalid key provided")
    text = f"channel={frame.get('channel')}&event={frame.get('event')}&time={frame.get('time')}"
    if not isinstance(sign, str) or not hmac.compare_digest(hmac_hex(secret, text), sign):
        raise WsAuthError("INVALID_SIGNATURE", "Signature mismatch")
    return str(key)


def verify_api(
    raw: str, frame: Mapping[str, Any], secrets: Mapping[str, str], now: float, window_s: float
) -> str:
    """The verified API key of a trading-API frame (``raw`` is its text as received)."""
    payload = frame.get("payload")
    if not isinstance(payload, dict):
        raise WsAuthError("INVALID_PARAM_VALUE", "payload is required", code=2)
    key, signature, timestamp = (
        payload.get("api_key"),
        payload.get("signature"),
        payload.get("timestamp"),
    )
    if not key or not signature or not isinstance(timestamp, str):
        raise WsAuthError("MISSING_REQUIRED_HEADER", "api_key, signature and timestamp required")
    _check_time(timestamp, now, window_s)
    secret = secrets.get(key) if isinstance(key, str) else None
    if secret is None:
        raise WsAuthError("INVALID_KEY", "Invalid key provided")
    span = value_span(raw, ("payload", "req_param"))
    req_param = raw[span[0] : span[1]] if span else ""
    text = f"api\n{frame.get('channel')}\n{req_param}\n{timestamp}"
    if not isinstance(signature, str) or not hmac.compare_digest(hmac_hex(secret, text), signature):
        raise WsAuthError("INVALID_SIGNATURE", "Signature mismatch")
    return str(key)
