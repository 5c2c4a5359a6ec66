"""One bot frame: passed unchanged, signed, or refused with a Gate-style error frame.

- a ``subscribe``/``unsubscribe`` on a private channel: decided by the key's policy on the
  channel's REST twin (:mod:`sidecar.policy.ws_channels`), then given a fresh ``auth``; a ``time``
  more than :data:`TIME_SLACK_S` from the sidecar's (Gate-corrected) clock is replaced;
- a trading-API frame (``event: "api"``): decided the same way (its ``req_param`` is the body
  the conditions read), judged by the trading guards, charged to the key's rate budget like its
  REST twin (Gate counts both against the same per-UID limits), then signed
  (:func:`sidecar.gate.ws_signing.sign_api_request`);
- anything else (public channels, pings): forwarded exactly as received.

A refused frame is never forwarded. Its error frame names the same ``channel`` and ``event`` and
carries back every id the bot sent (``id``, ``request_id``, ``payload.req_id``): ccxt and
gateio-api match answers by them and would otherwise wait forever.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.credentials.slot import KeySlot, fingerprint
from sidecar.errors import BadRequest, GuardDenied, PolicyDenied, RateLimited, SidecarError
from sidecar.gate.clock import Clock
from sidecar.gate.ws_paths import WsEndpoint
from sidecar.gate.ws_signing import (
    API_EVENT,
    SUB_EVENTS,
    encode_json,
    sign_api_request,
    sign_subscription,
)
from sidecar.policy.conditions import InvalidBody, reject_duplicate_keys
from sidecar.policy.engine import Policy
from sidecar.policy.guards import Guards
from sidecar.policy.ws_channels import Kind, budget_twin, channel_rule, decide_frame
from sidecar.proxy import safety
from sidecar.proxy.brake import Brake
from sidecar.proxy.budget import KeyBudget
from sidecar.proxy.market import Market
from sidecar.proxy.safety import Safety
from sidecar.proxy.ws.record import FrameRecord

# Gate allows 60 s; a bot's `time` this close to ours is kept (it is what the bot expects to see
# echoed), anything older, newer or not an integer is replaced.
TIME_SLACK_S = 5


class BadFrame(ValueError):
    """A bot frame the sidecar cannot check (never quotes the frame)."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadFrame("the frame holds a number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise BadFrame(f"{name} is not JSON")


def decode_frame(text: str) -> dict[str, Any]:
    """A bot's text frame as a JSON object; :class:`BadFrame` when it is not one.

    A repeated key is refused as the policy refuses it in a REST body: decoders disagree on which
    copy wins, and what is checked must be what Gate reads. A number that does not fit a float is
    refused too, since it could not be written back as JSON.
    """
    try:
        doc = json.loads(
            text,
            object_pairs_hook=reject_duplicate_keys,
            parse_float=_finite,
            parse_constant=_no_constant,
        )
    except BadFrame:
        raise
    except InvalidBody as exc:
        raise BadFrame(str(exc).replace("body", "frame")) from None
    except (ValueError, RecursionError):
        raise BadFrame("the frame is not JSON") from None
    if not isinstance(doc, dict):
        raise BadFrame("the frame is not a JSON object")
    return doc


class WsKey(Protocol):
    """What the relay reads of a key, once per frame (a reload swaps them in place).
    :class:`sidecar.proxy.pipeline.KeyRuntime` is one."""

    name: str
    policy: Policy
    slot: KeySlot
    clock: Clock
    guards: Guards
    brake: Brake | None
    market: Market | None
    budget: KeyBudget | None
    safety: Safety


@dataclass(slots=True)
class Outcome:
    forward: str | None  # the text to send to Gate
    reply: str | None = None  # an error frame for the bot
    frame: dict[str, Any] | None = None  # the parsed frame (None when it is not JSON)
    kind: Kind | None = None  # what was signed
    record: FrameRecord | None = None  # for the observers: signed and refused frames only
    signed_with: tuple[str, str] | None = None  # (key fingerprint, version) of a signed frame

    @property
    def request_id(self) -> str | None:
        """The id Gate's final answer to a signed trading-API frame will carry."""
        return None if self.frame is None else answer_id(self.frame)


def answer_id(frame: dict[str, Any]) -> str | None:
    payload = frame.get("payload")
    req_id = payload.get("req_id") if isinstance(payload, dict) else None
    for value in (req_id, frame.get("request_id"), frame.get("id")):
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def error_frame(frame: dict[str, Any], exc: SidecarError, now: float) -> str:
    """Gate's shapes for an error, both of them: ``error`` (subscriptions) and
    ``header``/``data.errs`` (trading API), with every id the bot sent."""
    channel, event = frame.get("channel", ""), frame.get("event", "")
    error = {"code": exc.status, "label": exc.label, "message": exc.message}
    doc: dict[str, Any] = {
        "time": int(now),
        "time_ms": int(now * 1000),
        "channel": channel,
        "event": event,
        "error": error,
        "result": {"status": "fail"},
    }
    if "id" in frame:
        doc["id"] = frame["id"]
    request_id = answer_id({k: v for k, v in frame.items() if k != "id"})
    if request_id is not None:
        doc["request_id"] = request_id
    if event == API_EVENT:
        doc["ack"] = False
        doc["header"] = {
            "response_time": str(int(now * 1000)),
            "status": str(exc.status),
            "channel": channel,
            "event": API_EVENT,
        }
        doc["data"] = {"errs": {"label": exc.label, "message": exc.message}}
        doc.setdefault("request_id", frame.get("id"))
    elif isinstance(frame.get("payload"), list):
        doc["payload"] = frame["payload"]  # ccxt clears its per-symbol subscriptions from it
    return encode_json(doc)


def _fresh_time(sent: object, now: int) -> int:
    if isinstance(sent, int) and not isinstance(sent, bool) and abs(sent - now) <= TIME_SLACK_S:
        return sent
    return now


async def process(key: WsKey, endpoint: WsEndpoint, text: str, session: int = 0) -> Outcome:
    """Decide and sign one text frame from the bot. Never raises a :class:`SidecarError`."""
    key.safety.seen()  # a sign of life for the dead man (sidecar.proxy.safety)
    try:
        frame = decode_frame(text)
    except BadFrame as exc:
        return _refused(key, endpoint, {}, BadRequest(str(exc)), "refuse", session)
    channel, event = frame.get("channel"), frame.get("event")
    if not isinstance(channel, str) or not isinstance(event, str):
        return Outcome(text, frame=frame)  # pings and the like: nothing to sign
    if event in SUB_EVENTS:
        rule = channel_rule(endpoint.product, channel)
        if rule is None or rule.kind is not Kind.PRIVATE:
            return Outcome(text, frame=frame)  # a public channel passes unchanged
        kind, body = Kind.PRIVATE, b""
    elif event == API_EVENT:
        if not isinstance(frame.get("payload"), dict):
            return _refused(
                key,
                endpoint,
                frame,
                BadRequest("a trading-API frame needs a payload object"),
                "refuse",
                session,
            )
        kind, body = Kind.API, encode_json(frame["payload"].get("req_param", "")).encode()
    else:
        return Outcome(text, frame=frame)
    record = FrameRecord(key.name, endpoint.product, channel, event, "sign", session=session)
    decision = decide_frame(key.policy, endpoint.product, endpoint.settle, channel, kind, body)
    record.rule, record.origin = decision.rule, decision.origin
    if not decision.allowed:
        record.would_deny = safety.policy_passes(key, decision, f"{event} {channel}")  # warn mode
        if record.would_deny is None:
            denied = PolicyDenied(f"{key.name} may not {event} {channel} ({decision.reason})")
            return _refused(key, endpoint, frame, denied, "deny", session, record)
    if kind is Kind.API:  # the guards and windows judge a WebSocket order as a REST one
        req_param = frame["payload"].get("req_param")
        guarded, would = await safety.judge_frame(key, channel, endpoint.settle, req_param)
        record.would_deny = record.would_deny or would
        if guarded is not None:
            record.guard = guarded.guard if isinstance(guarded, GuardDenied) else None
            return _refused(key, endpoint, frame, guarded, "deny", session, record)
    try:
        creds = key.slot.current()  # one whole pair for this frame
        twin = budget_twin(endpoint.product, endpoint.settle, channel)
        if kind is Kind.API and key.budget is not None and twin is not None:
            # After the slot, as for REST: a key that cannot sign spends no budget.
            record.rate_group = await key.budget.take(*twin)  # raises RateLimited
        now = key.clock.now()
        record.version = creds.version
        if kind is Kind.PRIVATE:
            signed = await sign_subscription(
                frame, creds.signer, creds.api_key, _fresh_time(frame.get("time"), now)
            )
            forward = encode_json(signed)
        else:
            safety.stamp_frame(key, channel, frame)  # x-gate-exptime (order_ttl_ms)
            forward = await sign_api_request(frame, creds.signer, creds.api_key, now)
    except RateLimited as exc:  # the key's budget for the twin's group is spent
        record.rate_group = exc.group
        return _refused(key, endpoint, frame, exc, "deny", session, record)
    except SidecarError as exc:  # no usable secret, or the transit signer failed
        return _refused(key, endpoint, frame, exc, "error", session, record)
    signed_with = (fingerprint(creds.api_key), creds.version)
    return Outcome(forward, frame=frame, kind=kind, record=record, signed_with=signed_with)


def _refused(
    key: WsKey,
    endpoint: WsEndpoint,
    frame: dict[str, Any],
    exc: SidecarError,
    decision: str,
    session: int,
    record: FrameRecord | None = None,
) -> Outcome:
    if record is None:
        channel, event = frame.get("channel"), frame.get("event")
        record = FrameRecord(
            key.name,
            endpoint.product,
            channel[:64] if isinstance(channel, str) else "",
            event[:32] if isinstance(event, str) else "",
            decision,
            session=session,
        )
    record.decision, record.label = decision, exc.label
    return Outcome(None, error_frame(frame, exc, time.time()), frame, record=record)
