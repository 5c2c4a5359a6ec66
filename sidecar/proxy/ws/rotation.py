"""``on_rotation: resume``: moving a live session to the new key without closing the bot's socket.

Closing would be the simple answer, and the wrong one for gate-ws: after a reconnect it replays
every frame it ever sent, order placements included. So, with the bot's frames held (the swap
lock), the sidecar:

1. opens a new upstream connection;
2. logs it in with the new pair if the bot had logged in, and repeats every subscription the
   bot holds (private ones freshly signed); Gate's answers to these are kept from the bot, which
   did not ask;
3. makes the new connection the live one and lets the bot's frames through again: a trading-API
   request already sent is never sent again;
4. lets the old connection deliver the answers to trading-API calls still pending on it (at most
   :data:`DRAIN_TIMEOUT_S`), relaying nothing else from it, then closes it.

If any step fails (Gate unreachable, the new pair refused at login), the session stays on the
old connection and the sidecar says so in the log: a working session is never dropped for a
rotation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from sidecar.credentials.slot import Credentials, fingerprint
from sidecar.errors import UpstreamUnavailable
from sidecar.gate.ws_paths import WsEndpoint
from sidecar.gate.ws_signing import encode_json
from sidecar.proxy.ws.frames import WsKey, process
from sidecar.proxy.ws.leg import Leg, Mode
from sidecar.proxy.ws.record import FrameRecord
from sidecar.proxy.ws.runtime import WsRuntime

log = logging.getLogger("sidecar.ws")

RESUME_TIMEOUT_S = 15.0
DRAIN_TIMEOUT_S = 10.0


def creds_id(creds: Credentials) -> tuple[str, str]:
    return fingerprint(creds.api_key), creds.version


class ResumeFailed(Exception):
    """The new connection could not take over (the message names channels, never secrets)."""


class Swappable(Protocol):
    """The parts of a session a resume works on (:class:`sidecar.proxy.ws.session.Session`)."""

    key: WsKey
    ws: WsRuntime
    endpoint: WsEndpoint
    headers: dict[str, str]
    number: int
    live: Leg
    setup: Leg | None
    draining: list[Leg]
    swap_lock: asyncio.Lock
    subscriptions: dict[tuple[str, str], dict[str, Any]]
    logins: dict[str, dict[str, Any]]

    def start_leg(self, leg: Leg) -> None: ...

    async def close_leg(self, leg: Leg, code: int, reason: str) -> None: ...

    def observe(self, record: FrameRecord | None) -> None: ...


async def resume(s: Swappable) -> None:
    async with s.swap_lock:
        creds = s.key.slot.credentials
        if creds is None or s.live.signed_with == creds_id(creds):
            return
        try:
            ws = await s.ws.upstream.connect(s.endpoint, s.headers, s.ws.settings.max_frame_bytes)
        except UpstreamUnavailable as exc:
            log.warning(
                "rotation: cannot resume the websocket session, it stays on the old key",
                extra={"key": s.key.name, "session": s.number, "error": exc.message},
            )
            return
        leg = Leg(ws, Mode.SETUP)
        s.setup = leg
        s.start_leg(leg)
        try:
            async with asyncio.timeout(RESUME_TIMEOUT_S):
                await _replay(s, leg)
        except (ResumeFailed, TimeoutError) as exc:
            log.warning(
                "rotation: cannot resume the websocket session, it stays on the old key",
                extra={"key": s.key.name, "session": s.number, "error": str(exc) or "timeout"},
            )
            s.setup = None
            await s.close_leg(leg, 1000, "")
            return
        old, s.live, s.setup = s.live, leg, None
        leg.mode, old.mode = Mode.LIVE, Mode.DRAINING
        s.draining.append(old)
        s.ws.stats.resumed += 1
    log.info(
        "rotation: websocket session resumed with the new key",
        extra={"key": s.key.name, "session": s.number, "version": creds.version},
    )
    if old.pending:
        try:
            await asyncio.wait_for(old.drained.wait(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "rotation: trading-API answers still pending on the old connection, closing it",
                extra={"key": s.key.name, "session": s.number, "pending": len(old.pending)},
            )
    s.draining.remove(old)
    await s.close_leg(old, 1000, "key rotated")


async def _replay(s: Swappable, leg: Leg) -> None:
    for n, (channel, frame) in enumerate(list(s.logins.items()), start=1):
        req_id = f"sidecar-resume-{s.number}-{n}"
        again = {k: v for k, v in frame.items() if k not in ("id", "request_id")}
        again["payload"] = {**frame["payload"], "req_id": req_id}
        await _send(s, leg, again)
        answer = await _answer(leg, _answers_request(req_id))
        header = answer.get("header")
        status = header.get("status") if isinstance(header, dict) else None
        if str(status) != "200":
            raise ResumeFailed(f"{channel} with the new key answered status {status}")
    for (channel, _), frame in list(s.subscriptions.items()):
        again = {k: v for k, v in frame.items() if k not in ("id", "request_id")}
        if not await _send(s, leg, again):
            continue  # no longer allowed (a reload changed the policy): not repeated
        answer = await _answer(leg, _answers_subscription(channel))
        if answer.get("error"):
            log.warning(
                "rotation: Gate refused a repeated subscription",
                extra={"key": s.key.name, "session": s.number, "channel": channel},
            )


async def _send(s: Swappable, leg: Leg, frame: dict[str, Any]) -> bool:
    outcome = await process(s.key, s.endpoint, encode_json(frame), s.number)
    s.observe(outcome.record)
    if outcome.forward is None:
        if frame.get("event") == "api":
            raise ResumeFailed(f"{frame.get('channel')} refused by the sidecar")
        return False
    if outcome.kind is not None:
        leg.signed_with = outcome.signed_with
    await leg.ws.send_str(outcome.forward)
    return True


def _answers_request(req_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: str(doc.get("request_id")) == req_id


def _answers_subscription(channel: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: doc.get("channel") == channel and doc.get("event") == "subscribe"


async def _answer(leg: Leg, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        doc = await leg.inbox.get()
        if not doc:  # the leg closed
            raise ResumeFailed("the new connection closed during the swap")
        if wanted(doc):
            return doc
