"""Trading safety over time, for REST requests and WebSocket frames alike: warn mode, the rolling
windows, order expiry and the dead-man switch's signs of life.

The pipeline (:mod:`sidecar.proxy.pipeline`) and the frame relay (:mod:`sidecar.proxy.ws.frames`)
call in here at a few clearly marked points:

- :func:`policy_passes`: a policy refusal that warn mode forwards (:mod:`sidecar.policy.mode`
  says which stay enforced);
- :func:`judge_rest` / :func:`judge_frame`: the trading guards (:mod:`sidecar.proxy.guarding`),
  then the rolling windows (:mod:`sidecar.proxy.windows`); warn mode turns their refusals into a
  :class:`~sidecar.policy.mode.WouldDeny`, logged here and audited and counted by the observers;
- :func:`rest_headers` / :func:`stamp_frame`: ``x-gate-exptime`` on order placements;
- :meth:`Safety.seen`: a sign of life for the dead-man switch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.errors import BadRequest, GuardDenied, NotFound, SidecarError, WindowDenied
from sidecar.gate.clock import Clock
from sidecar.gate.endpoints import template_path
from sidecar.gate.exptime import HEADER, WS_CHANNELS, BadExptime, stamped, takes_exptime
from sidecar.gate.head import RequestHead, without_exptime
from sidecar.gate.public import is_public
from sidecar.policy.conditions import Body
from sidecar.policy.engine import Decision
from sidecar.policy.guards import Call, Guards, Refusal
from sidecar.policy.mode import DenyKind, Mode, WouldDeny, warn_may_pass
from sidecar.policy.windows import charges, refusal, retry_after_s, window_needs
from sidecar.proxy.brake import Brake
from sidecar.proxy.deadman import DeadMan
from sidecar.proxy.guarding import any_guard, apply_guards, guard_error, ws_refusal
from sidecar.proxy.market import Market
from sidecar.proxy.record import RequestRecord
from sidecar.proxy.windows import KeyWindows

log = logging.getLogger("sidecar.safety")


@dataclass
class Safety:
    """One key's safety settings and state; a reload swaps the whole object in place."""

    mode: Mode = Mode.ENFORCE
    windows: KeyWindows | None = None
    order_ttl_ms: int | None = None
    dead_man: DeadMan | None = None

    def seen(self) -> None:
        """A request or frame of the bot passed client authentication."""
        if self.dead_man is not None:
            self.dead_man.seen()

    async def close(self) -> None:
        if self.windows is not None:
            await self.windows.close()


class SafetyKey(Protocol):
    """What these steps read of a key (:class:`sidecar.proxy.pipeline.KeyRuntime` is one)."""

    name: str
    clock: Clock
    guards: Guards
    brake: Brake | None
    market: Market | None
    safety: Safety


def _warn(key: str, would: WouldDeny, where: str) -> WouldDeny:
    log.warning(
        "would deny (warn mode): forwarded",
        extra={"key": key, "kind": would.kind.value, "would_deny": would.name, "call": where,
               "reason": would.message},
    )  # fmt: skip
    return would


# -- the dead man's heartbeat ---------------------------------------------------------------

HEARTBEAT_PATH = "/sidecar/v1/heartbeat"


def heartbeat(key: SafetyKey, method: str, record: RequestRecord) -> bytes:
    """``POST /sidecar/v1/heartbeat`` on the key's listener (never forwarded): a sign of life
    for the dead man (the only one with ``alive: heartbeat``; with ``alive: traffic`` any
    request is one); the answer says what each scope's countdown is."""
    dead_man = key.safety.dead_man
    record.rule = "heartbeat"
    if dead_man is None:
        record.decision = "deny"
        raise NotFound(f"{key.name} has no dead_man: nothing to keep alive")
    if method != "POST":
        record.decision = "deny"
        raise BadRequest(f"{HEARTBEAT_PATH} takes POST")
    dead_man.heartbeat()
    record.decision = "allow"
    scopes = {
        s.scope: {"armed": s.armed, "fires_in_s": s.fires_in_s, "error": s.error}
        for s in dead_man.status()
    }
    return json.dumps({"key": key.name, "timeout_s": dead_man.config.timeout_s,
                       "scopes": scopes}).encode()  # fmt: skip


# -- the policy ------------------------------------------------------------------------------


def policy_passes(key: SafetyKey, decision: Decision, where: str) -> WouldDeny | None:
    """A refusing decision that warn mode forwards (None: it stays refused)."""
    if not warn_may_pass(key.safety.mode, DenyKind.POLICY, decision.rule, decision.origin):
        return None
    would = WouldDeny(DenyKind.POLICY, decision.rule, f"{where}: {decision.reason}")
    return _warn(key.name, would, where)


def guard_passes(key: SafetyKey, refused: Refusal, where: str) -> WouldDeny | None:
    """A guard's refusal that warn mode forwards (None: it stays refused)."""
    if not warn_may_pass(key.safety.mode, DenyKind.GUARD, refused.guard):
        return None
    return _warn(key.name, WouldDeny(DenyKind.GUARD, refused.guard, refused.message), where)


# -- guards and windows ----------------------------------------------------------------------


async def _window_refusal(
    key: SafetyKey, call: Call, *, force: bool
) -> tuple[Refusal, float | None] | None:
    """The rolling windows' refusal of a call (and its Retry-After), counting it when it
    passes (or always, with ``force``)."""
    windows = key.safety.windows
    if windows is None:
        return None
    needs = window_needs(call, windows.counters)
    quotes = await key.market.quotes(needs) if needs and key.market is not None else {}
    weighed = charges(call, windows.counters, quotes)
    if isinstance(weighed, Refusal):
        return weighed, None
    full = await windows.take(weighed, force=force)
    if full is None:
        return None
    return refusal(full), retry_after_s(full)


def _denied(key: str, found: tuple[Refusal, float | None]) -> GuardDenied:
    rejected, wait = found
    if wait is None:
        return GuardDenied(f"{key}: {rejected.message}", rejected.guard)
    return WindowDenied(f"{key}: {rejected.message}", rejected.guard, wait)


async def judge_rest(
    key: SafetyKey, method: str, path: str, raw_query: str, body: Body, record: RequestRecord
) -> None:
    """The guards, then the windows, for a REST request: raises :class:`GuardDenied` (a window's
    :class:`WindowDenied`), or in warn mode records what would have refused."""
    mode = key.safety.mode
    if any_guard(key.guards, key.brake):  # else not even a coroutine to make
        try:
            await apply_guards(
                key.guards, key.brake, key.market, method, path, raw_query, body, record
            )
        except GuardDenied as exc:
            if not warn_may_pass(mode, DenyKind.GUARD, exc.guard):
                raise
            record.decision, record.guard = "would_deny", None
            would = WouldDeny(DenyKind.GUARD, exc.guard, exc.message)
            record.would_deny = record.would_deny or _warn(key.name, would, f"{method} {path}")
    if key.safety.windows is None or is_public(method, path):
        return
    where = f"{method} {path}"
    call = key.guards.http_call(method, path, raw_query, body, template=template_path(method, path))
    if not isinstance(call, Call):
        return  # no call the windows count (an unreadable one is the guards' to refuse)
    warn = mode is Mode.WARN
    found = await _window_refusal(key, call, force=warn)
    if found is None:
        return
    if warn:
        record.decision = "would_deny"
        would = WouldDeny(DenyKind.WINDOW, found[0].guard, found[0].message)
        record.would_deny = record.would_deny or _warn(key.name, would, where)
        return
    record.decision, record.guard = "deny", found[0].guard
    raise _denied(key.name, found)


async def judge_frame(
    key: SafetyKey, channel: str, settle: str | None, req_param: object
) -> tuple[SidecarError | None, WouldDeny | None]:
    """The same for one WebSocket trading-API frame: the refusal to answer with, or what warn
    mode forwarded despite a refusal."""
    mode = key.safety.mode
    would: WouldDeny | None = None
    rejected = await ws_refusal(key.guards, key.brake, key.market, channel, settle, req_param)
    if rejected is not None:
        would = guard_passes(key, rejected, channel)
        if would is None:
            return guard_error(key.name, rejected), None
    if key.safety.windows is None:
        return None, would
    call = key.guards.ws_call(channel, settle, req_param)
    if not isinstance(call, Call):
        return None, would
    found = await _window_refusal(key, call, force=mode is Mode.WARN)
    if found is None:
        return None, would
    if mode is Mode.WARN:
        window = WouldDeny(DenyKind.WINDOW, found[0].guard, found[0].message)
        return None, would or _warn(key.name, window, channel)
    return _denied(key.name, found), None


# -- order expiry ----------------------------------------------------------------------------


def _deadline(key: SafetyKey, given: object | None) -> int:
    ttl = key.safety.order_ttl_ms
    assert ttl is not None
    gate_now_ms = int((key.clock.wall() + key.clock.offset_s) * 1000)
    try:
        return stamped(gate_now_ms, ttl, given)
    except BadExptime as exc:
        raise BadRequest(str(exc)) from None


def rest_headers(key: SafetyKey, method: str, path: str, head: RequestHead) -> bytes:
    """The bot's header lines to Gate, with ``x-gate-exptime`` set on an order placement
    (``order_ttl_ms``); raises :class:`BadRequest` for a bot's value that is not epoch
    milliseconds."""
    if key.safety.order_ttl_ms is None or not takes_exptime(method, path):
        return head.forwarded
    deadline = _deadline(key, head.exptime)
    return without_exptime(head.forwarded) + f"{HEADER}: {deadline}\r\n".encode("ascii")


def stamp_frame(key: SafetyKey, channel: str, frame: dict[str, Any]) -> None:
    """Set ``payload.req_header.x-gate-exptime`` on a trading-API placement (in place); raises
    :class:`BadRequest` for a ``req_header`` the sidecar cannot read for certain."""
    if key.safety.order_ttl_ms is None or channel not in WS_CHANNELS:
        return
    payload: dict[str, Any] = frame["payload"]
    given_header = payload.get("req_header")
    if given_header is None:
        given_header = {}
    if not isinstance(given_header, dict):
        raise BadRequest("payload.req_header must be an object")
    # Go's decoder matches field names in any letter case: two spellings would be ambiguous.
    names = [name for name in given_header if name.lower() == HEADER]
    if len(names) > 1:
        raise BadRequest(f"payload.req_header gives {HEADER} {len(names)} times")
    given = given_header[names[0]] if names else None
    deadline = _deadline(key, given)
    header = {k: v for k, v in given_header.items() if k.lower() != HEADER}
    header[HEADER] = str(deadline)
    payload["req_header"] = header
