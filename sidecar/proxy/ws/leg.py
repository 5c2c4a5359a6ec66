"""One upstream connection of a session, and what it still owes the bot.

A session normally has one leg. During a rotation with ``on_rotation: resume`` it has two for a
moment: the new one being set up (its answers to the sidecar's own login and subscriptions are
kept from the bot), and the old one draining (it still delivers the answers to trading-API calls
sent on it, and nothing else, then closes).
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from typing import Any

import aiohttp


class Mode(Enum):
    SETUP = "setup"  # answers go to the session's replay, not to the bot
    LIVE = "live"  # everything goes to the bot
    DRAINING = "draining"  # only answers to trading-API calls still pending


class Leg:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, mode: Mode) -> None:
        self.ws = ws
        self.mode = mode
        self.signed_with: tuple[str, str] | None = None  # (key fingerprint, version)
        self.pending: set[str] = set()  # ids of trading-API calls Gate has not answered yet
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # SETUP only
        self.drained = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def settle(self, text: str) -> dict[str, Any] | None:
        """Note Gate's answer to a pending trading-API call: the answer (None when the frame is
        no such answer). An ack is followed by the result, which settles the call.

        Only frames that can be such an answer are parsed: market data is relayed untouched.
        """
        if not self.pending or '"request_id"' not in text:
            return None
        doc = parse_object(text)
        request_id = None if doc is None else doc.get("request_id")
        if doc is None or not isinstance(request_id, str | int):
            return None
        if str(request_id) not in self.pending:
            return None
        if doc.get("ack") is not True:
            self.pending.discard(str(request_id))
            if not self.pending:
                self.drained.set()
        return doc


def parse_object(text: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
