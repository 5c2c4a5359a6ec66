"""One bot frame: passed, signed, or refused with a Gate-style error frame.

Every frame is first read as Gate reads it (:mod:`.envelope`: field names in any letter case,
ambiguity and unknown fields refused), then sorted by its channel and event
(:func:`sidecar.policy.ws_channels.frame_kind`), and only what the table names goes on:

- a ping (``{prefix}.ping``, no event) and a public channel's ``subscribe``/``unsubscribe``:
  forwarded as received (re-written under the documented names if the bot used others);
- a private channel's ``subscribe``/``unsubscribe``: decided by the key's policy on the
  channel's REST twin, judged by the ``settle`` and ``instruments`` guards as that twin
  (:mod:`sidecar.policy.ws_scope`), then given a fresh ``auth``; a ``time`` more than
  :data:`TIME_SLACK_S` from the sidecar's (Gate-corrected) clock is replaced;
- a trading-API frame (``event: "api"``): decided the same way (its ``req_param`` is the body
  the conditions read), judged by the trading guards (a login by ``settle``), charged to the
  key's rate budget like its REST twin (Gate counts both against the same per-UID limits), then
  signed (:func:`sidecar.gate.ws_signing.sign_api_request`). Gate runs unsigned ``api`` frames
  on a logged-in connection, so no such frame passes any other way;
- anything else (an unknown channel or event): refused, never relayed.

A refused frame is never forwarded. Its error frame names the same ``channel`` and ``event`` and
carries back every id the bot sent (``id``, ``request_id``, ``payload.req_id``): ccxt and
gateio-api match answers by them and would otherwise wait forever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.credentials.slot import KeySlot, fingerprint
from sidecar.errors import BadRequest, GuardDenied, PolicyDenied, RateLimited, SidecarError
from sidecar.gate.clock import Clock
from sidecar.gate.ws_paths import WsEndpoint
from sidecar.gate.ws_signing import (
    API_EVENT,
    encode_json,
    sign_api_request,
    sign_subscription,
)
from sidecar.policy.engine import Policy
from sidecar.policy.guards import Guards, Refusal
from sidecar.policy.ws_channels import (
    LOGIN_CHANNELS,
    FrameKind,
    Kind,
    budget_twin,
    channel_rule,
    decide_frame,
    frame_kind,
    known_name,
)
from sidecar.policy.ws_scope import login_refusal, subscription_refusal
from sidecar.proxy import safety
from sidecar.proxy.admission import Admission
from sidecar.proxy.brake import Brake
from sidecar.proxy.budget import KeyBudget
from sidecar.proxy.guarding import guard_error
from sidecar.proxy.market import Market
from sidecar.proxy.safety import Safety
from sidecar.proxy.ws.envelope import BadFrame, Frame, ids_of, read_frame
from sidecar.proxy.ws.record import FrameRecord

# Gate allows 60 s; a bot's `time` this close to ours is kept (it is what the bot expects to see
# echoed), anything older, newer or not an integer is replaced.
TIME_SLACK_S = 5

__all__ = ["BadFrame", "Outcome", "WsKey", "error_frame", "process"]


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
    admission: Admission  # who may use the key's listener: a session's token is re-checked
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
        read = read_frame(text)
    except BadFrame as exc:
        return _refused(key, endpoint, ids_of(text), BadRequest(str(exc)), "refuse", session)
    frame, channel, event = read.doc, read.channel, read.event
    what = frame_kind(endpoint.product, channel, event)
    if what in (FrameKind.PING, FrameKind.PUBLIC):  # nothing to sign: relayed as Gate reads it
        return Outcome(text if read.as_sent else encode_json(frame), frame=frame)
    if what is FrameKind.UNKNOWN or event is None:
        why = (
            f"{channel[:64]!r} with no event is not a ping of this connection"
            if event is None
            else f"event {event[:32]!r} on channel {channel[:64]!r} is not one the sidecar relays"
        )
        return _refused(key, endpoint, frame, BadRequest(why), "refuse", session)
    kind = Kind.PRIVATE if what is FrameKind.PRIVATE else Kind.API
    body = "" if kind is Kind.PRIVATE else encode_json(frame["payload"].get("req_param", ""))
    named, named_event = known_name(endpoint.product, channel, event)
    record = FrameRecord(key.name, endpoint.product, named, named_event, "sign", session=session)
    decision = decide_frame(
        key.policy, endpoint.product, endpoint.settle, channel, kind, body.encode()
    )
    record.rule, record.origin = decision.rule, decision.origin
    if not decision.allowed:
        record.would_deny = safety.policy_passes(key, decision, f"{event} {channel}")  # warn mode
        if record.would_deny is None:
            denied = PolicyDenied(f"{key.name} may not {event} {channel} ({decision.reason})")
            return _refused(key, endpoint, frame, denied, "deny", session, record)
    scope = _scope_refusal(key, endpoint, read, kind)
    if scope is not None:  # settle and instruments on a subscription or a login
        record.guard = scope.guard
        would = safety.guard_passes(key, scope, f"{event} {channel}")  # warn mode
        if would is None:
            return _refused(
                key, endpoint, frame, guard_error(key.name, scope), "deny", session, record
            )
        record.would_deny = record.would_deny or would
    if kind is Kind.API:  # the guards and windows judge a WebSocket order as a REST one
        req_param = frame["payload"].get("req_param")
        judged, would = await safety.judge_frame(key, channel, endpoint.settle, req_param)
        record.would_deny = record.would_deny or would
        if judged is not None:
            record.guard = judged.guard if isinstance(judged, GuardDenied) else None
            return _refused(key, endpoint, frame, judged, "deny", session, record)
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


def _scope_refusal(key: WsKey, endpoint: WsEndpoint, read: Frame, kind: Kind) -> Refusal | None:
    """``settle`` and ``instruments`` on a frame the policy allowed: a private (un)subscription
    judged as its REST twin, a login by its connection's settle. A trading-API call's own guards
    (and the brake) are :func:`sidecar.proxy.safety.judge_frame`'s."""
    product, settle, channel = endpoint.product, endpoint.settle, read.channel
    if kind is Kind.PRIVATE:
        rule = channel_rule(product, channel)
        assert rule is not None  # frame_kind said PRIVATE
        payload = read.doc.get("payload")
        return subscription_refusal(key.guards, product, settle, rule, read.event or "", payload)
    if channel in LOGIN_CHANNELS:
        return login_refusal(key.guards, product, settle, channel)
    return None


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
        named, named_event = known_name(
            endpoint.product,
            channel if isinstance(channel, str) else "",
            event if isinstance(event, str) else None,
        )
        record = FrameRecord(
            key.name, endpoint.product, named, named_event, decision, session=session
        )
    record.decision, record.label = decision, exc.label
    return Outcome(None, error_frame(frame, exc, time.time()), frame, record=record)
