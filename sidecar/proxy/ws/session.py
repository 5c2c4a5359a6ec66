"""One bot WebSocket connection relayed to Gate: frames both ways, pings, close codes, idleness,
and what a rotation or a revocation does to it (the swap itself is in :mod:`.rotation`).

Bot to Gate: each frame goes through :func:`sidecar.proxy.ws.frames.process` (pass, sign or
refuse), one at a time, under the swap lock, so no frame is signed or sent while the session
moves to a new upstream connection. Gate to bot: text and binary frames are relayed unchanged;
Gate's count in an answer to a trading-API call tightens the key's rate budget (as
``X-Gate-RateLimit-*`` headers do for REST).
Pings and pongs are passed through in both directions; a close from either side closes the other
with the same code and reason.

A little over the usual length on purpose: the two directions, the idle deadline and the closes
share one session's state, and are easiest to check together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from sidecar.aio import cancel_and_wait
from sidecar.credentials.watch import SWAPPED
from sidecar.errors import BadRequest, Unauthenticated
from sidecar.gate.ratelimits import ws_rate_headers
from sidecar.gate.ws_paths import WsEndpoint
from sidecar.gate.ws_signing import encode_json
from sidecar.policy.ws_channels import LOGIN_CHANNELS, Kind, budget_twin
from sidecar.proxy.client_tokens import CLOSE_CODE, CLOSE_REASON
from sidecar.proxy.ws.bot import BotLeg
from sidecar.proxy.ws.bot import Kind as BotKind
from sidecar.proxy.ws.frames import Outcome, WsKey, error_frame, process
from sidecar.proxy.ws.leg import Leg, Mode, parse_object
from sidecar.proxy.ws.record import FrameRecord
from sidecar.proxy.ws.rotation import creds_id, resume
from sidecar.proxy.ws.runtime import WsRuntime

log = logging.getLogger("sidecar.ws")

CLOSE_ROTATED = 4001  # on_rotation: close
CLOSE_REVOKED = 4003  # the key's secret was revoked (or a reload left it without one)
ROTATED_REASON = "key rotated, reconnect"
REVOKED_REASON = "key revoked"
# Codes an endpoint may put in a close frame (RFC 6455 7.4); others (1005, 1006, 1015: "no code",
# "abnormal") describe a connection that ended without one and become 1011 towards the bot.
_SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


def sendable_code(code: int | None) -> int:
    if code is not None and (code in _SENDABLE or 3000 <= code <= 4999):
        return code
    return 1011


class Session:
    def __init__(
        self,
        key: WsKey,
        ws: WsRuntime,
        endpoint: WsEndpoint,
        bot: BotLeg,
        first: aiohttp.ClientWebSocketResponse,
        headers: dict[str, str],
        client_cert: str | None = None,
    ) -> None:
        self.key, self.ws, self.endpoint, self.bot = key, ws, endpoint, bot
        self.client_cert = client_cert  # the bot's certificate CN (mTLS), for the audit line
        self.headers = headers  # for the upstream connections of a resume
        self.number = ws.next_number()
        self.live = Leg(first, Mode.LIVE)
        self.setup: Leg | None = None  # a resume's new connection, until it goes live
        self.draining: list[Leg] = []  # old connections still owing answers
        self.swap_lock = asyncio.Lock()  # held while a frame is signed and sent, and by a swap
        # What a resume repeats on a new connection, in the order the bot sent it.
        self.subscriptions: dict[tuple[str, str], dict[str, Any]] = {}
        self.logins: dict[str, dict[str, Any]] = {}
        self._closing = False
        self._last_activity = asyncio.get_running_loop().time()
        self._rotation: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    # -- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        unsubscribe = self.ws.watch.subscribe(self.key.name, self.on_credentials)
        self.start_leg(self.live)
        watchdog = asyncio.create_task(self._idle_watchdog(), name=f"ws-idle:{self.number}")
        try:
            await self._pump_bot()
        finally:
            unsubscribe()
            await cancel_and_wait(watchdog)
            await cancel_and_wait(self._rotation)
            await self.close(1001, "bot connection closed")

    def start_leg(self, leg: Leg) -> None:
        leg.task = asyncio.create_task(self._pump_leg(leg), name=f"ws-leg:{self.number}")

    async def close(self, code: int, reason: str) -> None:
        """Close the bot's side with ``code`` and every upstream connection."""
        if not self._closing:
            self._closing = True
            if code in (CLOSE_ROTATED, CLOSE_REVOKED):
                self.ws.stats.closed_by_rotation += 1
            with contextlib.suppress(Exception):
                await self.bot.close(code, reason)
        for leg in self.legs():
            await self.close_leg(leg, 1000, "")

    def legs(self) -> list[Leg]:
        return [self.live, *([self.setup] if self.setup else []), *self.draining]

    async def close_leg(self, leg: Leg, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await leg.ws.close(code=code, message=reason.encode())
        if leg.task is not None and leg.task is not asyncio.current_task():
            await cancel_and_wait(leg.task)

    async def _idle_watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            idle_s = self.ws.settings.idle_timeout_s
            left = self._last_activity + idle_s - loop.time()
            if left <= 0:
                log.info("websocket idle, closing", extra={"key": self.key.name})
                await self.close(1001, "idle timeout")
                return
            await asyncio.sleep(min(left, 5.0) + 0.01)

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    # -- bot to Gate --------------------------------------------------------------------------
    async def _pump_bot(self) -> None:
        while not self._closing:
            msg = await self.bot.receive()
            self._touch()
            if msg.kind is BotKind.TEXT:
                self.ws.stats.frames_in += 1
                await self._from_bot(msg.text)
            elif msg.kind is BotKind.BINARY:
                self.ws.stats.frames_in += 1
                reply = error_frame({}, BadRequest("binary frames are not accepted"), self.now())
                await self.to_bot(reply)
            elif msg.kind is BotKind.PING:
                await self._upstream_call(self.live.ws.ping(msg.data))
            elif msg.kind is BotKind.PONG:
                await self._upstream_call(self.live.ws.pong(msg.data))
            elif msg.kind is BotKind.CLOSE:
                code, reason = sendable_code(msg.code), msg.reason
                self._closing = True
                for leg in self.legs():
                    await self.close_leg(leg, code, reason)
                return
            else:  # GONE: lost, or closed on a protocol error (1002, 1007) or size (1009)
                return

    async def _upstream_call(self, call: Any) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await call

    def now(self) -> float:
        return self.key.clock.wall() + self.key.clock.offset_s

    async def _from_bot(self, text: str) -> None:
        async with self.swap_lock:
            outcome = await process(self.key, self.endpoint, text, self.number)
            self.observe(outcome.record)
            if outcome.reply is not None:
                await self.to_bot(outcome.reply)
            if outcome.forward is None:
                return
            leg = self.live
            self._note(outcome)
            if outcome.kind is not None:
                leg.signed_with = leg.signed_with or outcome.signed_with
                if outcome.kind is Kind.API and outcome.request_id is not None:
                    leg.pending.add(outcome.request_id)
                    leg.drained.clear()
            await self._upstream_call(leg.ws.send_str(outcome.forward))

    def _note(self, outcome: Outcome) -> None:
        """Remember what a resume must repeat: subscriptions and logins."""
        frame = outcome.frame
        if frame is None:
            return
        channel, event = frame.get("channel"), frame.get("event")
        if not isinstance(channel, str):
            return
        if event in ("subscribe", "unsubscribe"):
            key = (channel, encode_json(frame.get("payload")))
            if event == "subscribe":
                self.subscriptions[key] = frame
            else:
                self.subscriptions.pop(key, None)
        elif event == "api" and channel in LOGIN_CHANNELS:
            self.logins[channel] = frame

    def observe(self, record: FrameRecord | None) -> None:
        if record is None:
            return
        record.client_cert = self.client_cert
        for observer in self.ws.observers:
            try:
                observer(record)
            except Exception:
                log.exception("frame observer failed")

    # -- Gate to bot --------------------------------------------------------------------------
    async def to_bot(self, data: str | bytes) -> None:
        if self._closing:
            return
        self.ws.stats.frames_out += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            if isinstance(data, str):
                await self.bot.send_text(data)
            else:
                await self.bot.send_binary(data)

    async def _pump_leg(self, leg: Leg) -> None:
        while True:
            msg = await leg.ws.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if leg.mode is Mode.LIVE:
                    self._touch()
                    answer = leg.settle(msg.data) if msg.type is WSMsgType.TEXT else None
                    await self.to_bot(msg.data)
                    await self._tighten(answer)
                elif msg.type is WSMsgType.TEXT:
                    await self._not_live(leg, msg.data)
            elif msg.type is WSMsgType.PING:
                if leg.mode is Mode.LIVE:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self.bot.ping(msg.data)
                else:  # a leg the bot does not see is kept alive by the sidecar
                    await self._upstream_call(leg.ws.pong(msg.data))
            elif msg.type is WSMsgType.PONG:
                if leg.mode is Mode.LIVE:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self.bot.pong(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                await self._leg_closed(leg, msg)
                return

    async def _not_live(self, leg: Leg, text: str) -> None:
        if leg.mode is Mode.DRAINING:
            answer = leg.settle(text)
            if answer is not None:  # an answer the bot is waiting for
                await self.to_bot(text)
                await self._tighten(answer)
            return
        doc = parse_object(text)
        if doc is not None:
            leg.inbox.put_nowait(doc)  # SETUP: the replay reads its answers; the rest is dropped

    async def _tighten(self, answer: dict[str, Any] | None) -> None:
        """Gate's count in a trading-API answer tightens the budget of the call's REST twin, as
        the ``X-Gate-RateLimit-*`` headers of a REST answer do."""
        budget, headers = self.key.budget, ws_rate_headers(answer)
        header = answer.get("header") if answer is not None else None
        channel = header.get("channel") if isinstance(header, dict) else None
        if budget is None or headers is None or not isinstance(channel, str):
            return
        twin = budget_twin(self.endpoint.product, self.endpoint.settle, channel)
        if twin is not None:
            await budget.observe(*twin, headers)

    async def _leg_closed(self, leg: Leg, msg: aiohttp.WSMessage) -> None:
        leg.drained.set()
        leg.inbox.put_nowait({})  # a replay waiting on this leg stops waiting
        if leg is not self.live or self._closing:
            return
        code = msg.data if msg.type is WSMsgType.CLOSE else leg.ws.close_code
        reason = msg.extra if msg.type is WSMsgType.CLOSE and msg.extra else "upstream closed"
        log.info("upstream websocket closed", extra={"key": self.key.name, "code": code})
        await self.close(sendable_code(code), reason)

    # -- rotation and revocation --------------------------------------------------------------
    def client_revoked(self) -> None:
        """The client token this session was opened with is no longer in the token file
        (:mod:`sidecar.proxy.client_tokens`): an audit line, then the close (4401)."""
        if self._closing:
            return
        record = FrameRecord(
            self.key.name, self.endpoint.product, "", "close", "deny", session=self.number
        )
        record.label = Unauthenticated.label
        self.observe(record)
        log.info("websocket client token revoked, closing", extra={"key": self.key.name})
        asyncio.get_running_loop().create_task(self.close(CLOSE_CODE, CLOSE_REASON))

    def on_credentials(self, event: str, detail: str) -> None:
        """The key's credentials changed (a CredentialWatch callback, on the event loop)."""
        if self._closing or event == "canary_rejected":
            return
        slot = self.key.slot
        if event == "revoked" or (event == SWAPPED and not slot.ready):
            asyncio.get_running_loop().create_task(self.close(CLOSE_REVOKED, REVOKED_REASON))
            return
        creds = slot.credentials
        signed = self.live.signed_with
        if creds is None or signed is None or signed == creds_id(creds):
            return  # this session never signed, or already uses this pair
        mode = self.ws.settings.on_rotation
        if mode == "close":
            asyncio.get_running_loop().create_task(self.close(CLOSE_ROTATED, ROTATED_REASON))
        elif mode == "resume" and (self._rotation is None or self._rotation.done()):
            self._rotation = asyncio.get_running_loop().create_task(resume(self))
