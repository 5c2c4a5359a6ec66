"""A bot's text frame read the way Gate reads it, or refused. Pure (no I/O).

Gate decodes frames with Go's ``encoding/json`` (:mod:`sidecar.policy.go_json`): field names in
any letter case, the last of several spellings winning. So the sidecar reads every field by its
documented name in any case, and refuses what it cannot read for certain:

- an object anywhere in the frame holding one field twice (the same key, or two spellings Gate
  takes as one: ``event`` and ``EVENT``, ``req_param`` and ``REQ_PARAM``);
- an envelope field it does not know (anything but :data:`ENVELOPE`), and, in a trading-API
  frame, a ``payload`` field it does not know (anything but :data:`API_PAYLOAD`);
- a ``channel`` or ``event`` that is not a string, a frame with no ``channel``, a trading-API
  frame whose ``payload`` (or ``req_header``) is not an object;
- text that is not one JSON object, or a number that cannot be written back as JSON.

:attr:`Frame.doc` holds the envelope (and a trading-API payload) under the documented names:
what the sidecar judges, signs and forwards, so nothing it did not read can reach Gate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sidecar.policy.go_json import Ambiguous, go_fields, go_object

# The envelope's fields: Gate's docs (time, id, channel, event, payload, auth) and the SDKs
# (ccxt and gateio-api send `id`; `request_id` is read back in answers).
ENVELOPE = ("time", "id", "channel", "event", "payload", "auth", "request_id")
# A trading-API payload's fields (Gate's "WebSocket API" docs; the three SDKs send no others).
API_PAYLOAD = ("req_id", "req_param", "req_header", "api_key", "signature", "timestamp")
IDS = ("id", "request_id")


class BadFrame(ValueError):
    """A bot frame the sidecar cannot read for certain (the message never quotes the frame)."""


@dataclass(frozen=True, slots=True)
class Frame:
    doc: dict[str, Any]  # the envelope under the documented names (and an API payload's)
    channel: str
    event: str | None  # None: the frame has no event (a ping)
    as_sent: bool  # every field the sidecar reads was spelled as documented: text forwarded as is


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadFrame("the frame holds a number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise BadFrame(f"{name} is not JSON")


def decode(text: str) -> dict[str, Any]:
    """The frame as a JSON object, every object in it unambiguous to Gate."""
    try:
        doc = json.loads(
            text, object_pairs_hook=go_object, parse_float=_finite, parse_constant=_no_constant
        )
    except BadFrame:
        raise
    except Ambiguous as exc:
        raise BadFrame(f"the frame is ambiguous to Gate: {exc}") from None
    except (ValueError, RecursionError):
        raise BadFrame("the frame is not JSON") from None
    if not isinstance(doc, dict):
        raise BadFrame("the frame is not a JSON object")
    return doc


def _unknown(count: int, where: str, known: tuple[str, ...]) -> BadFrame:
    # The unknown names are the bot's text: counted, never quoted.
    fields = "field" if count == 1 else "fields"
    return BadFrame(
        f"the frame's {where} has {count} {fields} the sidecar does not read "
        f"(it reads {', '.join(known)})"
    )


def read_frame(text: str) -> Frame:
    """The frame's envelope under the documented names; raises :class:`BadFrame`."""
    raw = decode(text)
    try:
        fields = go_fields(raw, ENVELOPE)
    except Ambiguous as exc:  # unreachable after go_object; kept so no guess is ever made
        raise BadFrame(str(exc)) from None
    if fields.unknown:
        raise _unknown(len(fields.unknown), "envelope", ENVELOPE)
    as_sent = all(key in ENVELOPE for key in raw)
    doc: dict[str, Any] = dict(fields.values)
    channel, event = doc.get("channel"), doc.get("event")
    if not isinstance(channel, str):
        raise BadFrame("the frame's channel is missing or not a string")
    if event is not None and not isinstance(event, str):
        raise BadFrame("the frame's event is not a string")
    if event == "api":
        payload = doc.get("payload")
        if not isinstance(payload, dict):
            raise BadFrame("a trading-API frame needs a payload object")
        inner = go_fields(payload, API_PAYLOAD)
        if inner.unknown:
            raise _unknown(len(inner.unknown), "payload", API_PAYLOAD)
        header = inner.get("req_header")
        if header is not None and not isinstance(header, dict):
            raise BadFrame("the frame's payload.req_header is not an object")
        as_sent = as_sent and all(key in API_PAYLOAD for key in payload)
        doc["payload"] = dict(inner.values)
    return Frame(doc, channel, event, as_sent)


def ids_of(text: str) -> dict[str, Any]:
    """The ids a frame carries (``id``, ``request_id``, ``payload.req_id``) under their
    documented names, read as Gate would even from a frame the sidecar refuses to read, so the
    error frame answers the bot's request: the first spelling found of each, nothing else."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, Any] = {}
    for name in IDS:
        value = _first(doc, name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            out[name] = value
    for name, longest in (("channel", 64), ("event", 32)):
        value = _first(doc, name)
        if isinstance(value, str):
            out[name] = value[:longest]
    payload = _first(doc, "payload")
    if isinstance(payload, dict):
        req_id = _first(payload, "req_id")
        if isinstance(req_id, str | int) and not isinstance(req_id, bool):
            out["payload"] = {"req_id": req_id}
    return out


def _first(obj: dict[str, Any], name: str) -> object | None:
    try:
        return go_fields(obj, (name,)).get(name)
    except Ambiguous:  # two spellings: take none rather than guess
        return None
